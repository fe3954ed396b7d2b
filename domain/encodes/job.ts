// One user's encode job: a file (by sha256) and normalized options, run as a fixed list of steps by
// whichever worker holds it. Rules:
// - a job is its owner's alone: another user asking for the same encode gets a job of their own;
// - the owner asking again is deduplicated onto this job, unless it failed or its output has gone
//   from the blob store, in which case it is a new attempt;
// - a new attempt for which an output of the same file and options is already stored (whoever's
//   job made it) completes at once with that output: no step runs;
// - a step may start only when every step before it has completed (a worker that took the job
//   over may redo a step whose outputs it cannot find);
// - progress and completion belong to the running step; nothing happens after completion.
// Which worker holds the job is settled by the expected version of its stream, not here.
import type { EncodeOptions, EncodeRequested, EventOf } from '../../schemas/types.generated.ts';
import { DomainError, type Decider } from '../decider.ts';

export type EncodeEvent = EventOf<
  | 'EncodeRequested'
  | 'EncodeDeduplicated'
  | 'EncodeStepStarted'
  | 'EncodeProgressed'
  | 'EncodeStepCompleted'
  | 'EncodeFailed'
  | 'EncodeCompleted'
>;

export type Step = 'probe' | 'extract' | 'encode' | 'logo' | 'mux' | 'cleanup';

/** An encode's output as stored in the blob store. */
export interface StoredOutput {
  sha256: string;
  size: number;
}

export type EncodeCommand =
  | (Omit<EncodeRequested, 'attempt' | 'at'> & {
      type: 'Request';
      now: number;
      /** An output of the same file and options that the asker found whole in the blob store, or null. */
      reuse: StoredOutput | null;
      /** The completed attempt whose output the asker found gone from the blob store, or null. */
      lostOutputOfAttempt: number | null;
    })
  | { type: 'StartStep'; jobId: string; step: Step; worker: string; now: number }
  | { type: 'Progress'; jobId: string; step: Step; percent: number; now: number }
  | { type: 'CompleteStep'; jobId: string; step: Step; info: string; now: number }
  | { type: 'Fail'; jobId: string; step: string; reason: string; stderrTail: string; now: number }
  | { type: 'Complete'; jobId: string; outputSha256: string; size: number; now: number };

export type JobStatus = 'none' | 'queued' | 'running' | 'completed' | 'failed';

export interface JobState {
  status: JobStatus;
  /** The owner, the only one who may see the job; their user topic gets its events. */
  userId: string;
  uploadId: string;
  sha256: string;
  filename: string;
  raw: boolean;
  options: EncodeOptions | null;
  attempt: number;
  step: Step | null;
  worker: string | null;
  percent: number;
  /** Completed steps of this attempt and what each recorded (JSON). */
  completed: Partial<Record<Step, string>>;
  lastEventAt: number;
  output: { sha256: string; size: number; container: string } | null;
  error: string | null;
}

export const initialState = (): JobState => ({
  status: 'none',
  userId: '',
  uploadId: '',
  sha256: '',
  filename: '',
  raw: false,
  options: null,
  attempt: 0,
  step: null,
  worker: null,
  percent: 0,
  completed: {},
  lastEventAt: 0,
  output: null,
  error: null,
});

/** The steps of a job, in order. Raw input needs no extraction; the logo is optional. */
export function stepsOf(raw: boolean, logo: boolean): Step[] {
  return ['probe', ...(raw ? [] : (['extract'] as Step[])), 'encode', ...(logo ? (['logo'] as Step[]) : []), 'mux', 'cleanup'];
}

export const planOf = (state: JobState): Step[] => stepsOf(state.raw, state.options?.logo ?? false);

/** The first step of the plan not yet completed, or null when all are. */
export function nextStep(state: JobState): Step | null {
  return planOf(state).find((s) => state.completed[s] === undefined) ?? null;
}

export const isTerminal = (state: JobState) => state.status === 'completed' || state.status === 'failed';

export function evolve(state: JobState, event: EncodeEvent): JobState {
  const at = event.data.at;
  switch (event.type) {
    case 'EncodeRequested': {
      const d = event.data;
      return {
        ...initialState(),
        status: 'queued',
        userId: d.userId,
        uploadId: d.uploadId,
        sha256: d.sha256,
        filename: d.filename,
        raw: d.raw,
        options: d.options,
        attempt: d.attempt,
        lastEventAt: at,
      };
    }
    case 'EncodeDeduplicated':
      // A repeated request changes nothing; in particular it is not a sign of the worker's life.
      return state;
    case 'EncodeStepStarted': {
      // Starting a step again (a takeover redoing lost work) forgets it and every step after it.
      const plan = planOf(state);
      const from = plan.indexOf(event.data.step as Step);
      const completed = Object.fromEntries(Object.entries(state.completed).filter(([s]) => plan.indexOf(s as Step) < from));
      return {
        ...state,
        status: 'running',
        step: event.data.step as Step,
        worker: event.data.worker,
        percent: 0,
        completed,
        lastEventAt: at,
      };
    }
    case 'EncodeProgressed':
      return { ...state, percent: event.data.percent, lastEventAt: at };
    case 'EncodeStepCompleted':
      return { ...state, completed: { ...state.completed, [event.data.step]: event.data.info }, step: null, percent: 100, lastEventAt: at };
    case 'EncodeFailed':
      return { ...state, status: 'failed', step: null, error: event.data.reason, lastEventAt: at };
    case 'EncodeCompleted':
      return {
        ...state,
        status: 'completed',
        step: null,
        output: { sha256: event.data.outputSha256, size: event.data.size, container: event.data.container },
        lastEventAt: at,
      };
  }
}

function requireActive(state: JobState, jobId: string): void {
  if (state.status === 'none') throw new DomainError('not_found', `jobId: no job ${jobId}`);
  if (isTerminal(state)) throw new DomainError('conflict', `jobId: job ${jobId} is ${state.status}`);
}

function requireRunning(state: JobState, jobId: string, step: Step): void {
  requireActive(state, jobId);
  if (state.step !== step)
    throw new DomainError('conflict', `step: ${step} is not the running step of job ${jobId} (${state.step ?? 'none'} is)`);
}

export function decide(command: EncodeCommand, state: JobState): EncodeEvent[] {
  const { jobId, now } = command;
  const userId = state.userId;
  switch (command.type) {
    case 'Request': {
      const { uploadId, sha256, filename, raw, options, webhookUrl } = command;
      if (state.status !== 'none' && state.userId !== command.userId) throw new DomainError('not_found', `jobId: no job ${jobId}`);
      const lost = state.status === 'completed' && command.lostOutputOfAttempt === state.attempt;
      if (state.status !== 'none' && state.status !== 'failed' && !lost) {
        return [
          { type: 'EncodeDeduplicated', data: { jobId, userId: command.userId, ownerId: state.userId, uploadId, again: true, at: now } },
        ];
      }
      const requested: EncodeEvent = {
        type: 'EncodeRequested',
        data: { jobId, userId: command.userId, uploadId, sha256, filename, raw, options, attempt: state.attempt + 1, at: now, webhookUrl },
      };
      // Never the output this job has just lost.
      const reuse = command.reuse && !(lost && command.reuse.sha256 === state.output?.sha256) ? command.reuse : null;
      if (!reuse) return [requested];
      return [
        requested,
        {
          type: 'EncodeCompleted',
          data: { jobId, userId: command.userId, outputSha256: reuse.sha256, size: reuse.size, container: options.container, at: now },
        },
      ];
    }
    case 'StartStep': {
      requireActive(state, jobId);
      const plan = planOf(state);
      const index = plan.indexOf(command.step);
      if (index < 0) throw new DomainError('invalid', `step: ${command.step} is not a step of job ${jobId}`);
      const missing = plan.slice(0, index).find((s) => state.completed[s] === undefined);
      if (missing) throw new DomainError('conflict', `step: ${command.step} cannot start before ${missing} has completed`);
      return [
        { type: 'EncodeStepStarted', data: { jobId, userId, step: command.step, worker: command.worker, attempt: state.attempt, at: now } },
      ];
    }
    case 'Progress': {
      requireRunning(state, jobId, command.step);
      const percent = Math.min(100, Math.max(0, Math.round(command.percent * 10) / 10));
      return [{ type: 'EncodeProgressed', data: { jobId, userId, step: command.step, percent, at: now } }];
    }
    case 'CompleteStep':
      requireRunning(state, jobId, command.step);
      return [{ type: 'EncodeStepCompleted', data: { jobId, userId, step: command.step, info: command.info, at: now } }];
    case 'Fail':
      requireActive(state, jobId);
      // Bounded as every event field is (schemas/limits.ts): the reason may be any error's message.
      return [
        {
          type: 'EncodeFailed',
          data: {
            jobId,
            userId,
            step: command.step,
            reason: command.reason.slice(0, 1000),
            stderrTail: command.stderrTail.slice(-8000),
            at: now,
          },
        },
      ];
    case 'Complete': {
      requireActive(state, jobId);
      const missing = nextStep(state);
      if (missing) throw new DomainError('conflict', `jobId: step ${missing} has not completed`);
      const container = state.options!.container;
      return [
        { type: 'EncodeCompleted', data: { jobId, userId, outputSha256: command.outputSha256, size: command.size, container, at: now } },
      ];
    }
  }
}

export const encodeJob: Decider<EncodeCommand, EncodeEvent, JobState> = { initialState, decide, evolve };

/** The event-store stream of a job. */
export const jobStream = (jobId: string) => `encode-${jobId}`;
