// The event store port: streams of decided events with optimistic concurrency. The Postgres
// implementation is the default; another store (EventStoreDB, expected revision) fits the same port.
import type { EventOf, EventType } from '../../schemas/types.generated.ts';

/** A decided event, one of the schemas' events: a `switch (event.type)` narrows its data. */
export type DomainEvent<T extends EventType = EventType> = EventOf<T>;

export interface StreamRead<S> {
  /** Version of the last event in the stream; 0 when the stream is empty. */
  version: number;
  state: S;
  /** Of the streams asked about in `LoadOptions.exists`, those that have an event. */
  existing?: Set<string>;
}

export interface LoadOptions {
  /** Other streams to check for existence in the same read (an id issued by another stream). */
  exists?: string[];
}

export interface AppendOptions<S> {
  /** Kafka key for every event appended (the relay publishes by it). */
  key: string;
  /** CloudEvents source. */
  source: string;
  correlationId?: string;
  causationId?: string;
  /** The state after these events, kept as a snapshot so the next load is one row. */
  snapshot?: S;
}

export class WrongExpectedVersion extends Error {
  constructor(
    readonly stream: string,
    readonly expected: number,
  ) {
    super(`stream ${stream} is no longer at version ${expected}`);
  }
}

/** The store cannot be reached (or did not answer in time): the caller answers 503, never guesses. */
export class EventStoreUnavailable extends Error {}

export interface EventStore {
  /** Folds a stream into state, starting from its snapshot when there is one. */
  load<E extends DomainEvent, S>(stream: string, initial: () => S, evolve: (s: S, e: E) => S, opts?: LoadOptions): Promise<StreamRead<S>>;
  /** Appends after `expectedVersion`; throws WrongExpectedVersion if another writer got there first. */
  append<S>(stream: string, expectedVersion: number, events: DomainEvent[], opts: AppendOptions<S>): Promise<{ version: number }>;
}
