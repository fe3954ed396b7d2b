// The command handler against an in-memory event store: load, decide, append with the expected
// version; on a conflict load and decide again; commands for one stream queued within a handler.
import { describe, expect, it } from 'vitest';
import { DomainError } from '../../domain/decider.ts';
import {
  activeStreams,
  evolve,
  initialState,
  viewer,
  viewerStream,
  type ViewerCommand,
  type ViewerEvent,
  type ViewerState,
} from '../../domain/streams/viewer.ts';
import { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import {
  EventStoreUnavailable,
  WrongExpectedVersion,
  type AppendOptions,
  type DomainEvent,
  type EventStore,
  type StreamRead,
} from '../../infra/eventstore/port.ts';
import { InMemoryEventStore } from '../support/in-memory-event-store.ts';

const U = 'user-1';
const STREAM = viewerStream(U);
const OPTS = { key: U, source: '/test/command-handler' };
const T0 = 1_700_000_000_000;
const TTL = 60_000;

const issue = (now = T0): ViewerCommand => ({ type: 'IssueUserId', userId: U, now });
const setLimit = (limit: number, now = T0): ViewerCommand => ({ type: 'SetLimit', userId: U, limit, now });
const activate = (streamId: string, now = T0): ViewerCommand => ({
  type: 'Activate',
  userId: U,
  streamId,
  now,
  ttlMs: TTL,
  defaultLimit: 5,
});
const activatedEvent = (streamId: string, at = T0): ViewerEvent => ({
  type: 'StreamActivated',
  data: { userId: U, streamId, at, expiresAt: at + TTL },
});

const handle = (handler: CommandHandler, command: ViewerCommand | (() => ViewerCommand)) => handler.handle(viewer, STREAM, command, OPTS);

const fold = (events: DomainEvent[]): ViewerState => (events as ViewerEvent[]).reduce(evolve, initialState());

/** A user with an issued id and a per-user limit, written straight into the store. */
async function userWithLimit(store: EventStore, limit: number): Promise<void> {
  const handler = new CommandHandler(store);
  await handle(handler, issue(T0 - 2));
  await handle(handler, setLimit(limit, T0 - 1));
}

/**
 * Another writer that gets in between a handler's load and its append: after each of the next
 * `times` loads of the stream, `write` appends to the store behind the loader's back.
 */
class InterleavingStore implements EventStore {
  sneaked = 0;
  constructor(
    private readonly inner: InMemoryEventStore,
    private times: number,
    private readonly write: (inner: InMemoryEventStore, n: number) => Promise<void>,
  ) {}

  async load<E extends DomainEvent, S>(stream: string, initial: () => S, evolve: (s: S, e: E) => S): Promise<StreamRead<S>> {
    const read = await this.inner.load(stream, initial, evolve);
    if (this.times-- > 0) await this.write(this.inner, ++this.sneaked);
    return read;
  }

  append<S>(stream: string, expectedVersion: number, events: DomainEvent[], opts: AppendOptions<S>): Promise<{ version: number }> {
    return this.inner.append(stream, expectedVersion, events, opts);
  }
}

/** The other writer activates stream `other-n` at the version it finds. */
const sneakActivation = async (inner: InMemoryEventStore, n: number) => {
  await inner.append(STREAM, inner.version(STREAM), [activatedEvent(`other-${n}`, T0 - 1)], { key: U, source: '/test/other-writer' });
};

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  return expect.fail('expected the command to fail');
}

describe('CommandHandler: load, decide, append', () => {
  it('appends the decided events after the version it loaded, with the state after them as snapshot', async () => {
    const store = new InMemoryEventStore();
    const handler = new CommandHandler(store);

    const first = await handler.handle(viewer, STREAM, issue(), { ...OPTS, correlationId: 'corr-1' });
    expect(first.events).toEqual([{ type: 'UserIdIssued', data: { userId: U, at: T0 } }]);
    expect(first.version).toBe(1);
    expect(first.state.issued).toBe(true);

    const second = await handle(handler, activate('a'));
    expect(second.events).toEqual([activatedEvent('a')]);
    expect(second.version).toBe(2);
    expect(activeStreams(second.state, T0)).toEqual(['a']);

    expect(store.appendCalls.map((c) => [c.expectedVersion, c.outcome])).toEqual([
      [0, 'appended'],
      [1, 'appended'],
    ]);
    expect(store.appendCalls[0]!.opts).toMatchObject({ key: U, source: OPTS.source, correlationId: 'corr-1' });
    expect(store.appendCalls[1]!.opts).toMatchObject({ key: U, source: OPTS.source });
    expect(store.events(STREAM)).toEqual([...first.events, ...second.events]);
    // The snapshot is the state after the events, at their version, and equals a full fold.
    expect(store.snapshot(STREAM)).toEqual({ version: 2, state: second.state });
    expect(store.snapshot<ViewerState>(STREAM)!.state).toEqual(fold(store.events(STREAM)));
  });

  it('decides on the state loaded from the snapshot plus the events after it', async () => {
    const store = new InMemoryEventStore();
    const handler = new CommandHandler(store);
    await handle(handler, issue());
    await handle(handler, setLimit(1));
    // An event written without a snapshot: the load must fold it over the snapshot.
    await store.append(STREAM, 2, [activatedEvent('a')], { key: U, source: '/test' });
    expect(store.snapshot(STREAM)!.version).toBe(2);

    const { events, version } = await handle(handler, activate('b'));
    expect(events).toEqual([{ type: 'ActivationRejected', data: { userId: U, streamId: 'b', limit: 1, active: ['a'], at: T0 } }]);
    expect(version).toBe(4);
  });

  it('a decision with no events appends nothing and keeps the version', async () => {
    const store = new InMemoryEventStore();
    const handler = new CommandHandler(store);
    await handle(handler, issue());
    const result = await handle(handler, { type: 'Deactivate', userId: U, streamId: 'never-active', now: T0 });
    expect(result.events).toEqual([]);
    expect(result.version).toBe(1);
    expect(store.version(STREAM)).toBe(1);
  });
});

describe('CommandHandler: another writer got there first', () => {
  it('loads again and decides again on the new state (not just appends again)', async () => {
    const inner = new InMemoryEventStore();
    await userWithLimit(inner, 1);
    const store = new InterleavingStore(inner, 1, sneakActivation);
    const handler = new CommandHandler(store);

    const { events, version } = await handle(handler, activate('a'));

    expect(store.sneaked).toBe(1);
    // The first decision (activate a) lost to the other writer's activation; decided again, the
    // limit of 1 is taken.
    expect(inner.appendCalls.slice(2).map((c) => [c.expectedVersion, c.outcome, c.events.map((e) => e.type)])).toEqual([
      [2, 'appended', ['StreamActivated']], // the other writer
      [2, 'conflict', ['StreamActivated']],
      [3, 'appended', ['ActivationRejected']],
    ]);
    expect(events).toEqual([{ type: 'ActivationRejected', data: { userId: U, streamId: 'a', limit: 1, active: ['other-1'], at: T0 } }]);
    expect(version).toBe(4);
    expect(activeStreams(fold(inner.events(STREAM)), T0)).toEqual(['other-1']);
  });

  it('keeps retrying while it keeps losing, and wins once the other writer stops', async () => {
    const inner = new InMemoryEventStore();
    await userWithLimit(inner, 10);
    const store = new InterleavingStore(inner, 4, sneakActivation);
    const { events, version } = await handle(new CommandHandler(store), activate('a'));
    expect(inner.conflicts).toBe(4);
    expect(events).toEqual([activatedEvent('a')]);
    expect(version).toBe(2 + 4 + 1);
  });

  it('gives up after maxAttempts with WrongExpectedVersion', async () => {
    const inner = new InMemoryEventStore();
    await userWithLimit(inner, 100);
    const store = new InterleavingStore(inner, Number.POSITIVE_INFINITY, sneakActivation);
    const err = await rejection(handle(new CommandHandler(store, 3), activate('a')));
    expect(err).toBeInstanceOf(WrongExpectedVersion);
    expect(store.sneaked).toBe(3);
    expect(inner.conflicts).toBe(3);
  });

  it('a command given as a function is built again for each attempt, so it sees the time of its decision', async () => {
    const inner = new InMemoryEventStore();
    await userWithLimit(inner, 10);
    const store = new InterleavingStore(inner, 1, sneakActivation);
    const built: number[] = [];
    let clock = T0;
    const make = (): ViewerCommand => {
      const now = (clock += 1000);
      built.push(now);
      return activate('a', now);
    };

    const { events } = await handle(new CommandHandler(store), make);

    expect(built).toEqual([T0 + 1000, T0 + 2000]);
    expect(events).toEqual([activatedEvent('a', T0 + 2000)]);
  });
});

describe('CommandHandler: the state it last appended, remembered', () => {
  it('decides the next command on it, without a load', async () => {
    const store = new InMemoryEventStore();
    const handler = new CommandHandler(store, 100, 1 << 20);
    await handle(handler, issue());
    await handle(handler, setLimit(2));
    const loads = store.loads;
    expect((await handle(handler, activate('a'))).events).toEqual([activatedEvent('a')]);
    expect((await handle(handler, activate('b'))).events).toEqual([activatedEvent('b')]);
    expect((await handle(handler, activate('c'))).events.map((e) => e.type)).toEqual(['ActivationRejected']);
    expect(store.loads - loads).toBe(0);
    expect(activeStreams(fold(store.events(STREAM)), T0)).toEqual(['a', 'b']);
  });

  it('overtaken by another process, it costs one load and a retry, and the limit holds', async () => {
    const store = new InMemoryEventStore();
    await userWithLimit(store, 2);
    const mine = new CommandHandler(store, 100, 1 << 20);
    const other = new CommandHandler(store, 100, 1 << 20); // another api process
    await handle(mine, activate('a'));
    await handle(other, activate('b'));
    const loads = store.loads;
    const { events } = await handle(mine, activate('c'));
    expect(events).toEqual([{ type: 'ActivationRejected', data: { userId: U, streamId: 'c', limit: 2, active: ['a', 'b'], at: T0 } }]);
    expect(store.loads - loads).toBe(1);
    expect(store.conflicts).toBe(1);
  });

  it('a refusal or a no-op decided on it is decided again on the stream as stored', async () => {
    const store = new InMemoryEventStore();
    await userWithLimit(store, 5);
    const mine = new CommandHandler(store, 100, 1 << 20);
    const other = new CommandHandler(store, 100, 1 << 20);
    await handle(mine, activate('a'));
    await handle(other, activate('b'));
    // Remembered, b is not active: a heartbeat would be refused and a deactivation do nothing.
    const before = store.conflicts;
    const beat = await handle(mine, { type: 'Heartbeat', userId: U, streamId: 'b', now: T0 + 1, ttlMs: TTL });
    expect(beat.events.map((e) => e.type)).toEqual(['StreamHeartbeat']);
    expect(store.conflicts).toBe(before); // checked by a load, not by a failed append
    await handle(other, activate('c'));
    const between = store.conflicts;
    const stop = await handle(mine, { type: 'Deactivate', userId: U, streamId: 'c', now: T0 + 2 });
    expect(stop.events.map((e) => e.type)).toEqual(['StreamDeactivated']);
    expect(activeStreams(fold(store.events(STREAM)), T0 + 2)).toEqual(['a', 'b']);
    expect(store.conflicts).toBe(between);
  });

  it("remembers nothing unless asked to (an upload's state grows with its chunks)", async () => {
    const store = new InMemoryEventStore();
    const handler = new CommandHandler(store);
    await handle(handler, issue());
    const loads = store.loads;
    await handle(handler, setLimit(2));
    await handle(handler, activate('a'));
    expect(store.loads - loads).toBe(2);
  });

  it('remembers at most `rememberBytes` of state', async () => {
    const store = new InMemoryEventStore();
    const handler = new CommandHandler(store, 100, 60); // one viewer's state and name (46 bytes), not two
    const users = ['u1', 'u2'];
    for (const u of users) await handler.handle(viewer, viewerStream(u), { type: 'IssueUserId', userId: u, now: T0 }, OPTS);
    const loads = store.loads;
    for (const u of [...users, ...users])
      await handler.handle(viewer, viewerStream(u), { type: 'SetLimit', userId: u, limit: 3, now: T0 }, OPTS);
    expect(store.loads - loads).toBe(4);
  });
});

describe('CommandHandler: failures', () => {
  it('a DomainError propagates and nothing is appended', async () => {
    const store = new InMemoryEventStore();
    const handler = new CommandHandler(store);
    await handle(handler, issue());
    const calls = store.appendCalls.length;

    const err = await rejection(handle(handler, issue()));
    expect(err).toBeInstanceOf(DomainError);
    expect((err as DomainError).kind).toBe('conflict');

    const other = new InMemoryEventStore();
    const notFound = await rejection(handle(new CommandHandler(other), activate('a')));
    expect((notFound as DomainError).kind).toBe('not_found');

    expect(store.appendCalls.length).toBe(calls);
    expect(store.version(STREAM)).toBe(1);
    expect(other.appendCalls).toEqual([]);
    expect(other.version(STREAM)).toBe(0);
  });

  it('EventStoreUnavailable on load propagates', async () => {
    const store = new InMemoryEventStore();
    const handler = new CommandHandler(store);
    await handle(handler, issue());
    const down = new EventStoreUnavailable('down');
    store.failNext('load', down);
    expect(await rejection(handle(handler, activate('a')))).toBe(down);
    expect(store.version(STREAM)).toBe(1);
  });

  it('EventStoreUnavailable on append propagates and is not retried (the caller answers 503, never guesses)', async () => {
    const store = new InMemoryEventStore();
    const handler = new CommandHandler(store, 100, 1 << 20);
    await handle(handler, issue());
    const appends = store.appendCalls.length;
    const down = new EventStoreUnavailable('timeout');
    store.failNext('append', down);
    expect(await rejection(handle(handler, activate('a')))).toBe(down);
    expect(store.appendCalls.length - appends).toBe(1);
    expect(store.version(STREAM)).toBe(1);
    // What it remembered is forgotten: the append's outcome is unknown, so the next command loads.
    const loads = store.loads;
    await handle(handler, activate('a'));
    expect(store.loads - loads).toBe(1);
  });

  it('a failed command does not hold up the next one for the stream', async () => {
    const store = new InMemoryEventStore({ latencyMs: 1 });
    const handler = new CommandHandler(store);
    await handle(handler, issue());
    store.failNext('append', new EventStoreUnavailable('blip'));
    const [failed, domainError, ok] = await Promise.allSettled([
      handle(handler, activate('a')),
      handle(handler, issue()),
      handle(handler, activate('b')),
    ]);
    expect(failed.status).toBe('rejected');
    expect(domainError.status).toBe('rejected');
    expect(ok.status === 'fulfilled' && ok.value.events).toEqual([activatedEvent('b')]);
  });
});

describe('CommandHandler: concurrency', () => {
  /** A seeded latency of 0-2 ms per store operation, so that commands really overlap. */
  const jitter = (seed: number) => {
    let x = seed;
    return () => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x % 3;
    };
  };

  const countTypes = (events: DomainEvent[]) =>
    events.reduce<Record<string, number>>((n, e) => ({ ...n, [e.type]: (n[e.type] ?? 0) + 1 }), {});

  /** Folding the stored events, at no point are more than `limit` streams active. */
  const maxActiveAlongTheWay = (events: DomainEvent[]) => {
    let state = initialState();
    let max = 0;
    for (const e of events as ViewerEvent[]) {
      state = evolve(state, e);
      max = Math.max(max, activeStreams(state, T0).length);
    }
    return max;
  };

  it(
    'one handler queues the commands of one stream: ' + '200 concurrent activations, limit 3 -> 3 activated, 197 rejected, no conflicts',
    async () => {
      const store = new InMemoryEventStore({ latencyMs: jitter(1) });
      await userWithLimit(store, 3);
      const handler = new CommandHandler(store);

      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => handle(handler, activate(`s${i}`))));

      const decided = results.flatMap((r) => r.events);
      expect(countTypes(decided)).toEqual({ StreamActivated: 3, ActivationRejected: 197 });
      // Queued in arrival order: the first three got in.
      expect(
        decided.filter((e) => e.type === 'StreamActivated').map((e) => (e as ViewerEvent & { type: 'StreamActivated' }).data.streamId),
      ).toEqual(['s0', 's1', 's2']);
      // Serialized, so no command ever loaded a version another had already passed.
      expect(store.conflicts).toBe(0);
      expect(store.version(STREAM)).toBe(2 + 200);
      expect(results.map((r) => r.version)).toEqual(Array.from({ length: 200 }, (_, i) => 3 + i));
      expect(maxActiveAlongTheWay(store.events(STREAM))).toBe(3);
    },
  );

  it(
    'two handlers sharing one store: ' + '200 racing activations, limit 3 -> still exactly 3 activated (conflicts settled by retry)',
    async () => {
      const store = new InMemoryEventStore({ latencyMs: jitter(2) });
      await userWithLimit(store, 3);
      const handlers = [new CommandHandler(store), new CommandHandler(store)];

      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => handle(handlers[i % 2]!, activate(`s${i}`))));

      expect(countTypes(results.flatMap((r) => r.events))).toEqual({ StreamActivated: 3, ActivationRejected: 197 });
      // The race really happened, and every loser decided again.
      expect(store.conflicts).toBeGreaterThan(0);
      const stored = store.events(STREAM);
      expect(stored.length).toBe(2 + 200);
      expect(countTypes(stored)).toEqual({ UserIdIssued: 1, UserLimitSet: 1, StreamActivated: 3, ActivationRejected: 197 });
      expect(maxActiveAlongTheWay(stored)).toBe(3);
      expect(store.snapshot<ViewerState>(STREAM)).toEqual({ version: 202, state: fold(stored) });
    },
  );

  it('streams are queued separately: a slow stream does not hold up another', async () => {
    const inner = new InMemoryEventStore();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = viewerStream('slow');
    const store: EventStore = {
      load: async (stream, initial, evolve) => {
        if (stream === slow) await gate;
        return inner.load(stream, initial, evolve);
      },
      append: (stream, expectedVersion, events, opts) => inner.append(stream, expectedVersion, events, opts),
    };
    const handler = new CommandHandler(store);

    let slowDone = false;
    const slowResult = handler
      .handle(viewer, slow, { type: 'IssueUserId', userId: 'slow', now: T0 }, OPTS)
      .then((r) => ((slowDone = true), r));
    const fast = await handle(handler, issue());
    expect(fast.version).toBe(1);
    expect(slowDone).toBe(false);

    release();
    expect((await slowResult).version).toBe(1);
  });
});
