// The stream-limit rules as given events / command / expected events: a viewer may watch at most
// `limit` streams at once, each activation is a lease that expires, and an expired lease never
// counts, whether or not its expiry has been recorded yet.
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../domain/decider.ts';
import {
  activeStreams,
  evolve,
  limitOf,
  MAX_LIMIT,
  viewer,
  type ViewerCommand,
  type ViewerEvent,
  type ViewerState,
} from '../../domain/streams/viewer.ts';
import { spec } from '../support/decider-spec.ts';
import { seededRandom } from '../support/seeded-random.ts';

const { given, stateAfter } = spec(viewer);

// ---- events and commands of one user ----

const U = 'user-1';
const TTL = 30_000;
const DEFAULT_LIMIT = 3;
const T0 = 1_700_000_000_000;

const issued = (at = T0 - 1000): ViewerEvent => ({ type: 'UserIdIssued', data: { userId: U, at } });
const limitSet = (limit: number, at = T0 - 500): ViewerEvent => ({ type: 'UserLimitSet', data: { userId: U, limit, at } });
const activated = (streamId: string, at = T0, expiresAt = at + TTL): ViewerEvent => ({
  type: 'StreamActivated',
  data: { userId: U, streamId, at, expiresAt },
});
const heartbeat = (streamId: string, at = T0, expiresAt = at + TTL): ViewerEvent => ({
  type: 'StreamHeartbeat',
  data: { userId: U, streamId, at, expiresAt },
});
const stopped = (streamId: string, at = T0): ViewerEvent => ({
  type: 'StreamDeactivated',
  data: { userId: U, streamId, reason: 'stopped', at },
});
const expired = (streamId: string, at: number): ViewerEvent => ({
  type: 'StreamDeactivated',
  data: { userId: U, streamId, reason: 'expired', at },
});
const rejected = (streamId: string, limit: number, active: string[], at = T0): ViewerEvent => ({
  type: 'ActivationRejected',
  data: { userId: U, streamId, limit, active, at },
});

const issue = (now = T0): ViewerCommand => ({ type: 'IssueUserId', userId: U, now });
const setLimit = (limit: number, now = T0): ViewerCommand => ({ type: 'SetLimit', userId: U, limit, now });
const activate = (streamId: string, now = T0, defaultLimit = DEFAULT_LIMIT): ViewerCommand => ({
  type: 'Activate',
  userId: U,
  streamId,
  now,
  ttlMs: TTL,
  defaultLimit,
});
const beat = (streamId: string, now = T0): ViewerCommand => ({ type: 'Heartbeat', userId: U, streamId, now, ttlMs: TTL });
const deactivate = (streamId: string, now = T0): ViewerCommand => ({ type: 'Deactivate', userId: U, streamId, now });
const expireLeases = (now = T0): ViewerCommand => ({ type: 'ExpireLeases', userId: U, now });

/** Streams activated a second apart from T0 - 10 s: each lease runs until its `at` + TTL. */
const activatedInOrder = (...ids: string[]) => ids.map((id, i) => activated(id, T0 - 10_000 + i * 1000));

describe('viewer decider: user ids', () => {
  it('issues a user id', () =>
    given([])
      .when(issue())
      .then([{ type: 'UserIdIssued', data: { userId: U, at: T0 } }]));

  it('refuses to issue the same user id twice (conflict)', () => given([issued()]).when(issue()).thenThrows('conflict'));

  it.each<[string, ViewerCommand]>([
    ['SetLimit', setLimit(2)],
    ['Activate', activate('a')],
    ['Heartbeat', beat('a')],
    ['Deactivate', deactivate('a')],
    ['ExpireLeases', expireLeases()],
  ])('%s on a user id nobody issued is not_found', (_name, command) => given([]).when(command).thenThrows('not_found'));
});

describe('viewer decider: activation and the limit', () => {
  it('activates a stream under the limit: a lease until now + ttl', () =>
    given([issued()])
      .when(activate('a'))
      .then([activated('a', T0, T0 + TTL)]));

  it('activates up to the limit', () =>
    given([issued(), ...activatedInOrder('a', 'b')])
      .when(activate('c'))
      .then([activated('c')]));

  it('rejects the (limit+1)th distinct stream, naming the limit and the active streams in activation order', () =>
    given([issued(), ...activatedInOrder('b', 'c', 'a')])
      .when(activate('d'))
      .then([rejected('d', 3, ['b', 'c', 'a'])]));

  it('keeps activation order when an earlier stream is renewed', () =>
    given([issued(), ...activatedInOrder('b', 'c', 'a'), heartbeat('b', T0 - 1)])
      .when(activate('d'))
      .then([rejected('d', 3, ['b', 'c', 'a'])]));

  it('activation order holds for UUID stream ids (as the API issues them), whatever their digits', () => {
    const ids = ['f0000000-0000-4000-8000-000000000000', '10000000-0000-4000-8000-000000000000', '20000000-0000-4000-8000-000000000000'];
    given([issued(), ...activatedInOrder(...ids)])
      .when(activate('x'))
      .then([rejected('x', 3, ids)]);
  });

  it('activating an already active stream renews it as a heartbeat', () =>
    given([issued(), activated('a', T0 - 5000)])
      .when(activate('a'))
      .then([heartbeat('a', T0, T0 + TTL)]));

  it('activating an already active stream counts once, even at the limit', () =>
    given([issued(), ...activatedInOrder('a', 'b', 'c')])
      .when(activate('b'))
      .then([heartbeat('b')]));

  it('a stopped stream no longer counts', () =>
    given([issued(), ...activatedInOrder('a', 'b', 'c'), stopped('b', T0 - 1)])
      .when(activate('d'))
      .then([activated('d')]));

  it('a rejection changes nothing: the next attempt is rejected too', () =>
    given([issued(), ...activatedInOrder('a', 'b', 'c'), rejected('d', 3, ['a', 'b', 'c'], T0 - 1)])
      .when(activate('d'))
      .then([rejected('d', 3, ['a', 'b', 'c'])]));
});

describe('viewer decider: per-user limits', () => {
  it('a lower per-user limit overrides the default', () =>
    given([issued(), limitSet(1), activated('a')])
      .when(activate('b'))
      .then([rejected('b', 1, ['a'])]));

  it('a higher per-user limit overrides the default', () =>
    given([issued(), limitSet(5), ...activatedInOrder('a', 'b', 'c', 'd')])
      .when(activate('e'))
      .then([activated('e')]));

  it('a higher per-user limit is still a limit', () =>
    given([issued(), limitSet(5), ...activatedInOrder('a', 'b', 'c', 'd', 'e')])
      .when(activate('f'))
      .then([rejected('f', 5, ['a', 'b', 'c', 'd', 'e'])]));

  it('the latest limit set is the one that counts', () =>
    given([issued(), limitSet(5), limitSet(2), ...activatedInOrder('a', 'b')])
      .when(activate('c'))
      .then([rejected('c', 2, ['a', 'b'])]));

  it('limit 0 rejects everything', () =>
    given([issued(), limitSet(0)])
      .when(activate('a'))
      .then([rejected('a', 0, [])]));

  it('a default limit of 0 rejects everything too', () =>
    given([issued()])
      .when(activate('a', T0, 0))
      .then([rejected('a', 0, [])]));

  it('lowering the limit keeps streams already active but admits no new one', () => {
    given([issued(), ...activatedInOrder('a', 'b', 'c'), limitSet(1, T0 - 1)])
      .when(activate('d'))
      .then([rejected('d', 1, ['a', 'b', 'c'])]);
    given([issued(), ...activatedInOrder('a', 'b', 'c'), limitSet(1, T0 - 1)])
      .when(beat('b'))
      .then([heartbeat('b')]);
  });

  it('limitOf prefers the per-user limit over the default', () => {
    expect(limitOf(stateAfter([issued()]), 3)).toBe(3);
    expect(limitOf(stateAfter([issued(), limitSet(0)]), 3)).toBe(0);
    expect(limitOf(stateAfter([issued(), limitSet(7)]), 3)).toBe(7);
  });

  it.each([0, 1, 3, MAX_LIMIT])('SetLimit %d is recorded', (limit) =>
    given([issued()])
      .when(setLimit(limit))
      .then([limitSet(limit, T0)]),
  );

  it.each([-1, 1.5, MAX_LIMIT + 1, Number.NaN, Number.POSITIVE_INFINITY])('SetLimit %d is invalid', (limit) =>
    given([issued()]).when(setLimit(limit)).thenThrows('invalid'),
  );
});

describe('viewer decider: heartbeats and deactivation', () => {
  it('a heartbeat renews an active stream', () =>
    given([issued(), activated('a', T0 - 20_000)])
      .when(beat('a'))
      .then([heartbeat('a', T0, T0 + TTL)]));

  it('a renewed lease runs from the heartbeat, not the activation', () =>
    given([issued(), activated('a', T0 - 40_000), heartbeat('a', T0 - 20_000)])
      .when(activate('b'))
      .then([activated('b')]));

  it('a heartbeat for a stream never activated is a conflict', () => given([issued()]).when(beat('a')).thenThrows('conflict'));

  it('a heartbeat for an expired stream is a conflict (the player must activate again)', () =>
    given([issued(), activated('a', T0 - TTL - 1)])
      .when(beat('a'))
      .thenThrows('conflict'));

  it('a heartbeat for a stopped stream is a conflict', () =>
    given([issued(), activated('a', T0 - 10), stopped('a', T0 - 5)])
      .when(beat('a'))
      .thenThrows('conflict'));

  it('deactivating an active stream stops it', () =>
    given([issued(), activated('a', T0 - 10)])
      .when(deactivate('a'))
      .then([stopped('a', T0)]));

  it('deactivating a stream never activated does nothing', () =>
    given([issued(), activated('a', T0 - 10)])
      .when(deactivate('b'))
      .then([]));

  it('deactivating a stream already stopped does nothing', () =>
    given([issued(), activated('a', T0 - 10), stopped('a', T0 - 5)])
      .when(deactivate('a'))
      .then([]));

  it('deactivating an expired stream records only its expiry', () =>
    given([issued(), activated('a', T0 - TTL - 10)])
      .when(deactivate('a'))
      .then([expired('a', T0 - 10)]));
});

describe('viewer decider: leases past their TTL', () => {
  it('an expired lease does not count though no expiry event exists yet: its expiry is recorded first, then the decision', () =>
    given([issued(), activated('a', T0 - 10_000), activated('b', T0 - TTL - 5), activated('c', T0 - 5000)])
      .when(activate('d'))
      .then([expired('b', T0 - 5), activated('d')]));

  it('a rejection names only live streams, after recording the expiries', () =>
    given([issued(), limitSet(2), activated('a', T0 - TTL - 5), activated('b', T0 - 2), activated('c', T0 - 1)])
      .when(activate('d'))
      .then([expired('a', T0 - 5), rejected('d', 2, ['b', 'c'])]));

  it('a lease expiring exactly now is expired (expiresAt === now)', () =>
    given([issued(), activated('a', T0 - 10_000), activated('b', T0 - TTL), activated('c', T0 - 5000)])
      .when(activate('d'))
      .then([expired('b', T0), activated('d')]));

  it('a lease expiring one millisecond from now still counts', () =>
    given([issued(), activated('a', T0 - 10_000), activated('b', T0 - TTL + 1), activated('c', T0 - 5000)])
      .when(activate('d'))
      .then([rejected('d', 3, ['a', 'b', 'c'])]));

  it('activating an expired stream records its expiry and activates it anew, last in order', () =>
    given([issued(), activated('a', T0 - TTL - 1), activated('b', T0 - 10)])
      .when(activate('a'))
      .then([expired('a', T0 - 1), activated('a')]));

  it('a heartbeat records expiries of other streams first', () =>
    given([issued(), activated('a', T0 - TTL - 1), activated('b', T0 - 10)])
      .when(beat('b'))
      .then([expired('a', T0 - 1), heartbeat('b')]));

  it('SetLimit records expiries first', () =>
    given([issued(), activated('a', T0 - TTL - 1)])
      .when(setLimit(2))
      .then([expired('a', T0 - 1), limitSet(2, T0)]));

  it('ExpireLeases records only the expiries, each at its lease end', () =>
    given([issued(), activated('a', T0 - TTL - 20), activated('b', T0 - 1), activated('c', T0 - TTL)])
      .when(expireLeases())
      .then([expired('a', T0 - 20), expired('c', T0)]));

  it('ExpireLeases with nothing expired records nothing', () =>
    given([issued(), activated('a', T0 - 1)])
      .when(expireLeases())
      .then([]));

  it('an expiry already recorded is not recorded again', () =>
    given([issued(), activated('a', T0 - TTL - 20), expired('a', T0 - 20)])
      .when(expireLeases())
      .then([]));

  it('activeStreams excludes leases at or past now', () => {
    const state = stateAfter([issued(), activated('a', T0 - TTL), activated('b', T0 - TTL + 1)]);
    expect(activeStreams(state, T0)).toEqual(['b']);
    expect(activeStreams(state, T0 - 1)).toEqual(['a', 'b']);
    expect(activeStreams(state, T0 + 1)).toEqual([]);
  });
});

// ---- properties over random command sequences ----

interface Step {
  command: ViewerCommand;
  before: ViewerState;
  events: ViewerEvent[] | DomainError;
}

/** Runs random commands through decide/evolve, as the command handler would. */
function simulate(seed: number, steps: number, opts: { setLimits: boolean }): { defaultLimit: number; history: Step[] } {
  const { next: rnd, int } = seededRandom(seed);
  const streams = ['s0', 's1', 's2', 's3', 's4', 's5'];
  const defaultLimit = int(5); // 0..4
  let now = T0;
  let state = stateAfter([]);
  const history: Step[] = [];
  for (let i = 0; i < steps; i++) {
    // Time moves on by anything from nothing to past a whole TTL, often to just around a lease end.
    const r = rnd();
    now += r < 0.3 ? 0 : r < 0.6 ? int(TTL / 10) : r < 0.9 ? int(TTL / 2) : TTL - 5 + int(10);
    const streamId = streams[int(streams.length)]!;
    const p = rnd();
    const command: ViewerCommand =
      !state.issued && p < 0.9
        ? { type: 'IssueUserId', userId: U, now }
        : p < 0.45
          ? { type: 'Activate', userId: U, streamId, now, ttlMs: TTL, defaultLimit }
          : p < 0.7
            ? { type: 'Heartbeat', userId: U, streamId, now, ttlMs: TTL }
            : p < 0.82
              ? { type: 'Deactivate', userId: U, streamId, now }
              : p < 0.9
                ? { type: 'ExpireLeases', userId: U, now }
                : p < 0.95 && opts.setLimits
                  ? { type: 'SetLimit', userId: U, limit: int(6) - (int(20) === 0 ? 1 : 0), now }
                  : { type: 'IssueUserId', userId: U, now };
    const before = state;
    let events: ViewerEvent[] | DomainError;
    try {
      events = viewer.decide(command, before);
      state = events.reduce(viewer.evolve, before);
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
      events = err;
    }
    history.push({ command, before, events });
  }
  return { defaultLimit, history };
}

const SEEDS = Array.from({ length: 12 }, (_, i) => 0x5eed + i * 7919);

/** Fails with the step that broke a property (built only then: thousands of steps are checked). */
function must(ok: boolean, property: string, step: Step): void {
  if (!ok)
    expect.fail(
      `${property}\n  command: ${JSON.stringify(step.command)}\n  state: ${JSON.stringify(step.before)}\n` +
        `  events: ${JSON.stringify(step.events)}`,
    );
}

describe('viewer decider: properties over random command sequences', () => {
  it.each(SEEDS)('seed %d: with a fixed limit, never more than the limit of live leases at any decision time', (seed) => {
    const { defaultLimit, history } = simulate(seed, 3000, { setLimits: false });
    let activations = 0;
    let rejections = 0;
    for (const step of history) {
      const { command, before, events } = step;
      if (events instanceof DomainError) continue;
      const after = events.reduce(evolve, before);
      must(activeStreams(after, command.now).length <= defaultLimit, `more than ${defaultLimit} live leases`, step);
      activations += events.filter((e) => e.type === 'StreamActivated').length;
      rejections += events.filter((e) => e.type === 'ActivationRejected').length;
    }
    // The sequence exercised both outcomes (a limit of 0 admits nothing).
    if (defaultLimit > 0) expect(activations).toBeGreaterThan(10);
    expect(rejections).toBeGreaterThan(10);
  });

  it.each(SEEDS)(
    'seed %d: with limits changing, an activation is admitted only below the limit and never takes the count past it',
    (seed) => {
      const { defaultLimit, history } = simulate(seed, 3000, { setLimits: true });
      for (const step of history) {
        const { command, before, events } = step;
        if (events instanceof DomainError) continue;
        const limit = limitOf(before, defaultLimit);
        const liveBefore = activeStreams(before, command.now);
        const after = events.reduce(evolve, before);
        const liveAfter = activeStreams(after, command.now);
        for (const event of events) {
          if (event.type === 'StreamActivated') {
            must(liveBefore.length < limit, `activated with ${liveBefore.length} live leases, limit ${limit}`, step);
            must(!liveBefore.includes(event.data.streamId), 'activated a stream already live (should be a heartbeat)', step);
          }
          if (event.type === 'ActivationRejected') {
            must(event.data.limit === limit, 'rejection names another limit', step);
            must(JSON.stringify(event.data.active) === JSON.stringify(liveBefore), 'rejection names other active streams', step);
            must(liveBefore.length >= limit, 'rejected below the limit', step);
          }
        }
        // Lowering the limit does not stop streams, but no decision takes the count above it.
        const limitAfter = limitOf(after, defaultLimit);
        must(liveAfter.length <= Math.max(limitAfter, liveBefore.length), 'the decision took the count past the limit', step);
        must(liveAfter.length <= liveBefore.length || liveAfter.length <= limitAfter, 'the count grew past the limit', step);
      }
    },
  );

  it.each(SEEDS)('seed %d: every decision first records each expired lease exactly once, and only those', (seed) => {
    const { history } = simulate(seed, 3000, { setLimits: true });
    let expiries = 0;
    for (const step of history) {
      const { command, before, events } = step;
      if (events instanceof DomainError) continue;
      const due = Object.entries(before.leases)
        .filter(([, until]) => until <= command.now)
        .map(([id]) => id);
      const leading = events.slice(0, due.length);
      must(
        leading.length === due.length &&
          leading.every((e, i) => e.type === 'StreamDeactivated' && e.data.reason === 'expired' && e.data.streamId === due[i]),
        'the expiries due are not recorded first',
        step,
      );
      must(
        !events.slice(due.length).some((e) => e.type === 'StreamDeactivated' && e.data.reason === 'expired'),
        'an expiry recorded that was not due',
        step,
      );
      // After any decision, the recorded state holds no lease past its end.
      const after = events.reduce(evolve, before);
      must(
        Object.values(after.leases).every((until) => until > command.now),
        'a lease past its end remains after the decision',
        step,
      );
      expiries += due.length;
    }
    expect(expiries).toBeGreaterThan(10);
  });
});
