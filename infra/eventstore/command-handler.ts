// The one way a command is handled: load the aggregate, decide, append with the expected version;
// if another writer got there first, load again and decide again. Commands for one stream are
// queued within a process, so concurrent requests for one user do not fight each other here;
// across processes the expected version settles it.
import { LRUCache } from 'lru-cache';
import type { Decider } from '../../domain/decider.ts';
import { sleep } from '../retry.ts';
import { WrongExpectedVersion, type DomainEvent, type EventStore } from './port.ts';

export interface Handled<E, S> {
  events: E[];
  state: S;
  version: number;
}

interface Known {
  state: unknown;
  version: number;
}

export class CommandHandler {
  private readonly queues = new Map<string, Promise<unknown>>();
  /**
   * Each stream as this process last appended to it, decided on first instead of a load: a
   * decision is then one round trip, not two. The append's expected version proves it current; a
   * stale one (another process appended since) costs a load and a retry, nothing else.
   */
  private readonly recent?: LRUCache<string, Known>;

  /**
   * `rememberBytes`: how much state to keep, counted as its JSON (0: none). A viewer's state is a
   * few leases, an upload's grows with its chunks: a bound in bytes holds for both.
   */
  constructor(
    private readonly store: EventStore,
    private readonly maxAttempts = 100,
    rememberBytes = 0,
  ) {
    if (rememberBytes > 0)
      this.recent = new LRUCache({
        maxSize: rememberBytes,
        sizeCalculation: (k: Known, stream) => stream.length + JSON.stringify(k.state).length,
      });
  }

  handle<C, E extends DomainEvent, S>(
    decider: Decider<C, E, S>,
    stream: string,
    command: C | (() => C),
    options: {
      key: string;
      source: string;
      correlationId?: string;
      /** The stream as the caller just loaded it, decided on first instead of a load (a stale one costs a retry). */
      known?: { state: S; version: number };
    },
    /** Another stream that must exist first (an issued id), read in the same round trip as the state. */
    requires?: { stream: string; missing: () => Error },
  ): Promise<Handled<E, S>> {
    const { known, ...opts } = options;
    const exists = requires ? [requires.stream] : undefined;
    const run = async (): Promise<Handled<E, S>> => {
      for (let attempt = 1; ; attempt++) {
        const unverified =
          attempt === 1 && !requires ? (known ?? (this.recent?.get(stream) as (Known & { state: S }) | undefined)) : undefined;
        const { version, state, existing } = unverified
          ? { ...unverified, existing: undefined }
          : await this.store.load(stream, decider.initialState, decider.evolve, { exists });
        if (!unverified) this.recent?.set(stream, { state, version });
        if (requires && !existing?.has(requires.stream)) throw requires.missing();
        // A command built fresh per attempt (e.g. with the current time) sees the time of its decision.
        const cmd = typeof command === 'function' ? (command as () => C)() : command;
        let events: E[];
        try {
          events = decider.decide(cmd, state);
        } catch (err) {
          if (unverified) continue; // a refusal is only said on the stream as stored
          throw err;
        }
        // Nothing to append proves nothing about the state: answer from the stream as stored.
        if (unverified && !events.length) continue;
        const next = events.reduce(decider.evolve, state);
        try {
          const { version: v } = await this.store.append(stream, version, events, { ...opts, snapshot: next });
          this.recent?.set(stream, { state: next, version: v });
          return { events, state: next, version: v };
        } catch (err) {
          this.recent?.delete(stream);
          if (!(err instanceof WrongExpectedVersion) || attempt >= this.maxAttempts) throw err;
          // A remembered state was merely old; two live writers part ways with a jitter.
          if (!unverified) await sleep(Math.random() * Math.min(50, attempt * 2));
        }
      }
    };
    const previous = this.queues.get(stream) ?? Promise.resolve();
    const result = previous.then(run, run);
    const tail = result.catch(() => undefined);
    this.queues.set(stream, tail);
    void tail.then(() => {
      if (this.queues.get(stream) === tail) this.queues.delete(stream);
    });
    return result;
  }
}
