// A worker's hold on one job: the job's state and the stream version the worker last wrote. Every
// append expects exactly that version, so if anyone else wrote to the job meanwhile (a worker that
// took it over) the append fails with JobLost and this worker stops: two workers never both write.
// Events that leave the job's state as it was (its owner asking for it again) are no such write:
// the worker decides again on the same state at the new version and carries on.
import { isDeepStrictEqual } from 'node:util';
import { encodeJob, jobStream, type EncodeCommand, type EncodeEvent, type JobState } from '../../domain/encodes/job.ts';
import { WrongExpectedVersion, type EventStore } from '../../infra/eventstore/port.ts';

export class JobLost extends Error {}

const SOURCE = '/worker';

/** Commands without the fields the session fills in itself. */
type Command = EncodeCommand extends infer C ? (C extends { jobId: string; now: number } ? Omit<C, 'jobId' | 'now'> : never) : never;

export class JobSession {
  private constructor(
    private readonly store: EventStore,
    readonly jobId: string,
    public state: JobState,
    public version: number,
  ) {}

  static async load(store: EventStore, jobId: string): Promise<JobSession> {
    const { state, version } = await store.load(jobStream(jobId), encodeJob.initialState, encodeJob.evolve);
    return new JobSession(store, jobId, state, version);
  }

  private queue: Promise<unknown> = Promise.resolve();

  /** Decides against the state this worker holds and appends at the version it last saw, one at a time. */
  apply(command: Command): Promise<EncodeEvent[]> {
    return this.applyAll([command]);
  }

  /**
   * Several commands decided in turn and appended together, in one round trip: a step's completion
   * and the next step's start are one write, so nothing waits between the two.
   */
  applyAll(commands: Command[]): Promise<EncodeEvent[]> {
    const next = this.queue.then(() => this.applyNow(commands));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async applyNow(commands: Command[]): Promise<EncodeEvent[]> {
    for (;;) {
      const now = Date.now();
      let next = this.state;
      const events: EncodeEvent[] = [];
      for (const command of commands) {
        const decided = encodeJob.decide({ ...command, jobId: this.jobId, now } as EncodeCommand, next);
        next = decided.reduce(encodeJob.evolve, next);
        events.push(...decided);
      }
      try {
        const { version } = await this.store.append(jobStream(this.jobId), this.version, events, {
          key: this.jobId,
          source: SOURCE,
          snapshot: next,
        });
        this.version = version;
        this.state = next;
        return events;
      } catch (err) {
        if (!(err instanceof WrongExpectedVersion)) throw err;
        const current = await this.store.load(jobStream(this.jobId), encodeJob.initialState, encodeJob.evolve);
        if (!isDeepStrictEqual(current.state, this.state)) throw new JobLost(`job ${this.jobId} was written by another worker`);
        this.version = current.version;
      }
    }
  }
}
