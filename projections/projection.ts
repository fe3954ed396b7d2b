// A projection: named, versioned, reads some topics, applies batches of records inside the
// caller's transaction. The runner stores its positions in that same transaction.
import type { Kysely, Transaction } from 'kysely';
import type { Decoded } from '../schemas/codec.ts';
import type { TOPICS, TopicName } from '../schemas/catalog.ts';
import type { EventMeta } from '../schemas/envelope.ts';
import type { Database } from './database.ts';

/** The event types a topic carries, as the topic catalog declares them. */
export type TopicEvents<T extends TopicName> = (typeof TOPICS)[T]['events'][number];

/** A record of one of the projection's topics: its event is one of the types those topics carry. */
export interface ProjectedRecord<T extends TopicName = TopicName> {
  topic: T;
  partition: number;
  offset: number;
  meta: EventMeta;
  event: Decoded<TopicEvents<T>>;
}

/**
 * The default of a `switch (event.type)` over a projection's records: each type its topics carry
 * must have a case of its own (nothing left for this `never`), so a new event in the topic catalog
 * does not compile until every projection says what it does with it. At run time a record of a
 * type its topic does not declare is skipped.
 */
export function noEventLeft(_event: never): void {}

/** Creates one index in the current schema, if it is not there yet. */
export type IndexBuild = (db: Kysely<any>) => Promise<unknown>;

export interface Projection<T extends TopicName = TopicName> {
  name: string;
  topics: T[];
  /** Tables readers use, through public views of the serving version. */
  views: string[];
  /** Creates this projection's tables in the current schema (a version's own). */
  createTables(db: Kysely<any>): Promise<void>;
  /**
   * Indexes only readers need, one build each (IF NOT EXISTS). A version being rebuilt gets them
   * once it has caught up, just before the swap, all built at once: one bulk build is many times
   * cheaper than keeping them current row by row, and a GIN build uses a single core.
   */
  indexes?: IndexBuild[];
  apply(trx: Transaction<Database>, records: ProjectedRecord<T>[]): Promise<void>;
  /**
   * Per topic, how long its reader may wait to fill a batch when records are few. For a read model
   * nobody needs within the second: a transaction per handful of records costs the machine more than
   * the records do (the streams topic at 500 decisions/s was a transaction per one or two). A topic
   * read with a wait is read apart from projections that read it without one.
   */
  lingerMs?: Partial<Record<T, number>>;
}
