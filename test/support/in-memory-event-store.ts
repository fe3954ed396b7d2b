// An EventStore in memory that behaves like PostgresEventStore where it matters to a caller:
// versions count from 1, an append after a version the stream has passed throws
// WrongExpectedVersion (checked and written in one step, as the unique key does), an empty append
// is a no-op that checks nothing, the snapshot is stored with the events as JSON, and a load
// starts from the snapshot and folds the events after it. Latency and failures can be injected.
import {
  WrongExpectedVersion,
  type AppendOptions,
  type DomainEvent,
  type EventStore,
  type LoadOptions,
  type StreamRead,
} from '../../infra/eventstore/port.ts';

export type Operation = 'load' | 'append';

export interface AppendCall {
  stream: string;
  expectedVersion: number;
  events: DomainEvent[];
  opts: AppendOptions<unknown>;
  outcome: 'appended' | 'conflict' | 'failed' | 'empty';
}

export interface InMemoryEventStoreOptions {
  /** Milliseconds each operation waits before it runs (a number, or drawn per call). */
  latencyMs?: number | ((op: Operation, stream: string) => number);
}

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

export class InMemoryEventStore implements EventStore {
  private readonly streams = new Map<string, DomainEvent[]>();
  private readonly snapshots = new Map<string, { version: number; json: string }>();
  private readonly failures: Array<{ op: Operation; error: Error }> = [];
  /** Every append call, in the order they were decided (conflicts and failures included). */
  readonly appendCalls: AppendCall[] = [];
  loads = 0;

  constructor(private readonly options: InMemoryEventStoreOptions = {}) {}

  /** The next `op` (only that one) throws `error` instead of running. */
  failNext(op: Operation, error: Error): void {
    this.failures.push({ op, error });
  }

  /** The stream's events as stored. */
  events(stream: string): DomainEvent[] {
    return clone(this.streams.get(stream) ?? []);
  }

  version(stream: string): number {
    return this.streams.get(stream)?.length ?? 0;
  }

  snapshot<S>(stream: string): { version: number; state: S } | undefined {
    const snap = this.snapshots.get(stream);
    return snap && { version: snap.version, state: JSON.parse(snap.json) as S };
  }

  get conflicts(): number {
    return this.appendCalls.filter((c) => c.outcome === 'conflict').length;
  }

  async load<E extends DomainEvent, S>(
    stream: string,
    initial: () => S,
    evolve: (s: S, e: E) => S,
    opts: LoadOptions = {},
  ): Promise<StreamRead<S>> {
    await this.before('load', stream);
    this.loads++;
    const snap = this.snapshots.get(stream);
    let state = snap ? (JSON.parse(snap.json) as S) : initial();
    let version = snap?.version ?? 0;
    const events = this.streams.get(stream) ?? [];
    for (; version < events.length; version++) state = evolve(state, clone(events[version]!) as E);
    if (!opts.exists) return { version, state };
    return { version, state, existing: new Set(opts.exists.filter((s) => this.streams.get(s)?.length)) };
  }

  async append<S>(stream: string, expectedVersion: number, events: DomainEvent[], opts: AppendOptions<S>): Promise<{ version: number }> {
    const call: AppendCall = { stream, expectedVersion, events: clone(events), opts: clone(opts), outcome: 'failed' };
    this.appendCalls.push(call);
    await this.before('append', stream);
    if (!events.length) {
      call.outcome = 'empty';
      return { version: expectedVersion };
    }
    // From here to the write nothing awaits: the check and the write are one step.
    const stored = this.streams.get(stream) ?? [];
    if (stored.length !== expectedVersion) {
      call.outcome = 'conflict';
      throw new WrongExpectedVersion(stream, expectedVersion);
    }
    const version = expectedVersion + events.length;
    this.streams.set(stream, [...stored, ...clone(events)]);
    if (opts.snapshot !== undefined) this.snapshots.set(stream, { version, json: JSON.stringify(opts.snapshot) });
    call.outcome = 'appended';
    return { version };
  }

  private async before(op: Operation, stream: string): Promise<void> {
    const { latencyMs } = this.options;
    const ms = typeof latencyMs === 'function' ? latencyMs(op, stream) : (latencyMs ?? 0);
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    else await Promise.resolve();
    const i = this.failures.findIndex((f) => f.op === op);
    if (i >= 0) throw this.failures.splice(i, 1)[0]!.error;
  }
}
