// The encode job rules as given events / command / expected events or error, and the options:
// validation naming the field, defaults, and the job id that makes one user's request of the same
// file with the same options the same job (and another user's a job of their own).
import { describe, expect, it } from 'vitest';
import type { DomainErrorKind } from '../../domain/decider.ts';
import {
  encodeJob,
  evolve,
  jobStream,
  nextStep,
  stepsOf,
  type EncodeCommand,
  type EncodeEvent,
  type Step,
} from '../../domain/encodes/job.ts';
import { jobIdOf, normalizeOptions } from '../../domain/encodes/options.ts';
import { JobLost, JobSession } from '../../apps/worker/job-session.ts';
import { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import { InMemoryEventStore } from '../support/in-memory-event-store.ts';
import { spec } from '../support/decider-spec.ts';
import type { EncodeOptions } from '../../schemas/types.generated.ts';

const { given, stateAfter } = spec(encodeJob);

const J = 'job-1';
const A = 'user-a';
const B = 'user-b';
const T = 1_700_000_000_000;
const OPTIONS: EncodeOptions = { preset: 'fast', qp: 30, container: 'mp4', logo: true, width: null, height: null, fps: null };
const requested = (attempt = 1, userId = A, uploadId = `up-${userId}`, options = OPTIONS): EncodeEvent => ({
  type: 'EncodeRequested',
  data: { jobId: J, userId, uploadId, sha256: 'abc', filename: 'a.mp4', raw: false, options, attempt, at: T, webhookUrl: null },
});
const started = (step: Step, worker = 'w1'): EncodeEvent => ({
  type: 'EncodeStepStarted',
  data: { jobId: J, userId: A, step, worker, attempt: 1, at: T },
});
const completed = (step: Step): EncodeEvent => ({ type: 'EncodeStepCompleted', data: { jobId: J, userId: A, step, info: '{}', at: T } });
const failed: EncodeEvent = {
  type: 'EncodeFailed',
  data: { jobId: J, userId: A, step: 'encode', reason: 'encode: boom', stderrTail: 'x', at: T },
};
const request = (
  userId = A,
  facts: { reuse?: { sha256: string; size: number }; lostOutputOfAttempt?: number; webhookUrl?: string } = {},
): EncodeCommand => ({
  type: 'Request',
  jobId: J,
  userId,
  uploadId: `up-${userId}`,
  sha256: 'abc',
  filename: 'a.mp4',
  raw: false,
  options: OPTIONS,
  webhookUrl: facts.webhookUrl ?? null,
  now: T,
  reuse: facts.reuse ?? null,
  lostOutputOfAttempt: facts.lostOutputOfAttempt ?? null,
});
const done = (outputSha256 = 'o', size = 9): EncodeEvent => ({
  type: 'EncodeCompleted',
  data: { jobId: J, userId: A, outputSha256, size, container: 'mp4', at: T },
});
const start = (step: Step, worker = 'w1'): EncodeCommand => ({ type: 'StartStep', jobId: J, step, worker, now: T });
const through = (last: Step): EncodeEvent[] => {
  const plan = stepsOf(false, true);
  return plan.slice(0, plan.indexOf(last) + 1).flatMap((s) => [started(s), completed(s)]);
};

describe('encode job decider: requests and dedup', () => {
  it('a first request queues the job', () => given([]).when(request()).then([requested()]));
  it('the owner asking again is deduplicated onto their job, and nothing about the job changes', () => {
    const dedup: EncodeEvent = {
      type: 'EncodeDeduplicated',
      data: { jobId: J, userId: A, ownerId: A, uploadId: `up-${A}`, again: true, at: T },
    };
    given([requested()]).when(request()).then([dedup]);
    given([requested(), ...through('cleanup'), done()])
      .when(request())
      .then([dedup]);
    // Not even the time of the last event: a repeated request is no sign of a worker's life.
    const running = stateAfter([requested(), started('encode')]);
    expect(evolve(running, { ...dedup, data: { ...dedup.data, at: T + 60_000 } })).toEqual(running);
  });
  it("a job is its owner's alone: nobody else is let onto it", () => {
    given([requested()]).when(request(B)).thenThrows('not_found');
    given([requested(), ...through('cleanup'), done()])
      .when(request(B))
      .thenThrows('not_found');
  });
  it("a request's webhook is its attempt's: recorded with the request, not taken over by a repeat", () => {
    const hook = 'https://hooks.example/encodes';
    const withHook = (attempt = 1): EncodeEvent => {
      const e = requested(attempt);
      return { ...e, data: { ...e.data, webhookUrl: hook } } as EncodeEvent;
    };
    given([])
      .when(request(A, { webhookUrl: hook }))
      .then([withHook()]);
    given([requested(), started('probe'), failed])
      .when(request(A, { webhookUrl: hook }))
      .then([withHook(2)]);
    const dedup: EncodeEvent = {
      type: 'EncodeDeduplicated',
      data: { jobId: J, userId: A, ownerId: A, uploadId: `up-${A}`, again: true, at: T },
    };
    given([requested()])
      .when(request(A, { webhookUrl: hook }))
      .then([dedup]);
  });
  it('a request after a failure is a new attempt', () => {
    given([requested(), started('probe'), failed])
      .when(request())
      .then([requested(2)]);
  });
  it('a completed job whose output has gone is a new attempt; a report about an earlier attempt is not', () => {
    const completed = [requested(), ...through('cleanup'), done()];
    given(completed)
      .when(request(A, { lostOutputOfAttempt: 1 }))
      .then([requested(2)]);
    const again = [...completed, requested(2), ...through('cleanup'), done('o2')];
    given(again)
      .when(request(A, { lostOutputOfAttempt: 1 }))
      .then([{ type: 'EncodeDeduplicated', data: { jobId: J, userId: A, ownerId: A, uploadId: `up-${A}`, again: true, at: T } }]);
  });
});

describe('encode job decider: an output already stored', () => {
  const stored = { sha256: 'f'.repeat(64), size: 1234 };
  const completedAtOnce: EncodeEvent[] = [
    requested(),
    { type: 'EncodeCompleted', data: { jobId: J, userId: A, outputSha256: stored.sha256, size: 1234, container: 'mp4', at: T } },
  ];
  it('completes a new job at once with it', () =>
    given([])
      .when(request(A, { reuse: stored }))
      .then(completedAtOnce));
  it('completes a new attempt at once with it, after a failure or a lost output', () => {
    given([requested(), started('probe'), failed])
      .when(request(A, { reuse: stored }))
      .then([requested(2), completedAtOnce[1]!]);
    given([requested(), ...through('cleanup'), done()])
      .when(request(A, { reuse: stored, lostOutputOfAttempt: 1 }))
      .then([requested(2), completedAtOnce[1]!]);
  });
  it('is never the output the job has just lost', () =>
    given([requested(), ...through('cleanup'), done(stored.sha256, stored.size)])
      .when(request(A, { reuse: stored, lostOutputOfAttempt: 1 }))
      .then([requested(2)]));
  it('plays no part when the job exists and is not to run again', () =>
    given([requested(), started('probe')])
      .when(request(A, { reuse: stored }))
      .then([{ type: 'EncodeDeduplicated', data: { jobId: J, userId: A, ownerId: A, uploadId: `up-${A}`, again: true, at: T } }]));
  it('leaves nothing for a worker to do: no step may start, nothing completes again', () => {
    expect(stateAfter(completedAtOnce)).toMatchObject({
      status: 'completed',
      output: { sha256: stored.sha256, size: 1234, container: 'mp4' },
    });
    given(completedAtOnce).when(start('probe')).thenThrows('conflict');
    given(completedAtOnce).when({ type: 'Complete', jobId: J, outputSha256: 'o', size: 1, now: T }).thenThrows('conflict');
  });
});

describe('encode job decider: steps', () => {
  it('plans extract only for non-raw input and the logo only when asked', () => {
    expect(stepsOf(false, true)).toEqual(['probe', 'extract', 'encode', 'logo', 'mux', 'cleanup']);
    expect(stepsOf(true, false)).toEqual(['probe', 'encode', 'mux', 'cleanup']);
  });
  it('starts steps in order, and the next step follows the completed ones', () => {
    given([requested()])
      .when(start('probe'))
      .then([started('probe')]);
    given([requested(), ...through('extract')])
      .when(start('encode'))
      .then([started('encode')]);
    expect(nextStep(stateAfter([requested(), ...through('extract')]))).toBe('encode');
  });
  it.each<[string, EncodeEvent[], EncodeCommand, DomainErrorKind]>([
    ['a step before the ones it needs', [requested(), ...through('probe')], start('encode'), 'conflict'],
    ['a step not in the plan', [requested(1, A, `up-${A}`, { ...OPTIONS, logo: false }), ...through('encode')], start('logo'), 'invalid'],
    [
      'anything on a completed job',
      [
        requested(),
        ...through('cleanup'),
        { type: 'EncodeCompleted', data: { jobId: J, userId: A, outputSha256: 'o', size: 1, container: 'mp4', at: T } },
      ],
      start('probe'),
      'conflict',
    ],
    ['anything on a failed job', [requested(), started('probe'), failed], start('probe'), 'conflict'],
    ['a job that was never asked for', [], start('probe'), 'not_found'],
    [
      'progress of a step that is not running',
      [requested(), started('probe')],
      { type: 'Progress', jobId: J, step: 'encode', percent: 5, now: T },
      'conflict',
    ],
    [
      'completion before every step is done',
      [requested(), ...through('logo')],
      { type: 'Complete', jobId: J, outputSha256: 'o', size: 1, now: T },
      'conflict',
    ],
  ])('refuses %s', (_n, events, command, kind) => given(events).when(command).thenThrows(kind));
  it('a takeover may start a completed step again, forgetting it and what came after', () => {
    const state = stateAfter([requested(), ...through('encode'), started('encode', 'w2')]);
    expect(state.completed).toEqual({ probe: '{}', extract: '{}' });
    expect(state.worker).toBe('w2');
  });
  it('progress is rounded and kept within 0..100', () =>
    given([requested(), started('probe')])
      .when({ type: 'Progress', jobId: J, step: 'probe', percent: 123.456, now: T })
      .then([{ type: 'EncodeProgressed', data: { jobId: J, userId: A, step: 'probe', percent: 100, at: T } }]));
  it('completes once every step is done', () =>
    given([requested(), ...through('cleanup')])
      .when({ type: 'Complete', jobId: J, outputSha256: 'o', size: 9, now: T })
      .then([{ type: 'EncodeCompleted', data: { jobId: J, userId: A, outputSha256: 'o', size: 9, container: 'mp4', at: T } }]));
});

describe("a worker's hold on a job", () => {
  async function running() {
    const store = new InMemoryEventStore();
    await store.append(jobStream(J), 0, [requested()], { key: J, source: 'test', snapshot: stateAfter([requested()]) });
    const session = await JobSession.load(store, J);
    await session.apply({ type: 'StartStep', step: 'probe', worker: 'w1' });
    return { store, session };
  }
  it('outlasts its owner asking for the job again: the worker carries on at the new version', async () => {
    const { store, session } = await running();
    const ask = await new CommandHandler(store).handle(encodeJob, jobStream(J), request(), { key: J, source: 'test' });
    expect(ask.events.map((e) => e.type)).toEqual(['EncodeDeduplicated']);
    await session.apply({ type: 'CompleteStep', step: 'probe', info: '{}' });
    const { state } = await store.load(jobStream(J), encodeJob.initialState, encodeJob.evolve);
    expect(state.completed).toEqual({ probe: '{}' });
  });
  it('is lost to another worker taking the job over', async () => {
    const { store, session } = await running();
    const { version } = await store.load(jobStream(J), encodeJob.initialState, encodeJob.evolve);
    await store.append(jobStream(J), version, [started('probe', 'w2')], { key: J, source: 'test' });
    await expect(session.apply({ type: 'CompleteStep', step: 'probe', info: '{}' })).rejects.toBeInstanceOf(JobLost);
  });
});

describe('encode options', () => {
  it('fills in the defaults', () =>
    expect(normalizeOptions({}, false)).toEqual({
      preset: 'medium',
      qp: 22,
      container: 'mp4',
      logo: true,
      width: null,
      height: null,
      fps: null,
    }));
  it.each<[unknown, boolean, string]>([
    [{ preset: 'turbo' }, false, 'options.preset'],
    [{ qp: 52 }, false, 'options.qp'],
    [{ qp: -1 }, false, 'options.qp'],
    [{ qp: '30' }, false, 'options.qp'],
    [{ container: 'avi' }, false, 'options.container'],
    [{ logo: 1 }, false, 'options.logo'],
    [{ fps: 25 }, false, 'options.fps'],
    [{ colour: 'red' }, false, 'options.colour'],
    [[], false, 'options'],
    [{ width: 64, height: 48 }, true, 'options.fps'],
    [{ width: 63, height: 48, fps: 25 }, true, 'options.width'],
    [{ width: 64, height: 99999, fps: 25 }, true, 'options.height'],
    [{ width: 64, height: 48, fps: 0 }, true, 'options.fps'],
  ])('refuses %j (raw: %s), naming %s', (input, raw, field) => {
    expect(() => normalizeOptions(input, raw)).toThrow(new RegExp(`^${field.replace('.', '\\.')}:`));
  });
  it('one user, the same file and the same normalized options give the same job id; any difference another', () => {
    const a = jobIdOf(A, 'f'.repeat(64), normalizeOptions({ qp: 22 }, false));
    expect(jobIdOf(A, 'f'.repeat(64), normalizeOptions({ preset: 'medium', container: 'mp4', logo: true }, false))).toBe(a);
    expect(jobIdOf(A, 'f'.repeat(64), normalizeOptions({ qp: 23 }, false))).not.toBe(a);
    expect(jobIdOf(A, 'e'.repeat(64), normalizeOptions({ qp: 22 }, false))).not.toBe(a);
    expect(jobIdOf(B, 'f'.repeat(64), normalizeOptions({ qp: 22 }, false))).not.toBe(a);
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
