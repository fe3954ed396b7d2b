// A projection: named, versioned, reads some topics, applies batches of records inside the
// caller's transaction. The runner stores its positions in that same transaction.
import type { Kysely, Transaction } from 'kysely';
import type { Decoded } from '../schemas/codec.ts';
import type { TopicName } from '../schemas/catalog.ts';
import type { EventMeta } from '../schemas/envelope.ts';
import type { Database } from './database.ts';

export interface ProjectedRecord {
  topic: TopicName;
  partition: number;
  offset: number;
  meta: EventMeta;
  event: Decoded;
}

export interface Projection {
  name: string;
  topics: TopicName[];
  /** Tables readers use, through public views of the serving version. */
  views: string[];
  /** Creates this projection's tables in the current schema (a version's own). */
  createTables(db: Kysely<any>): Promise<void>;
  /**
   * Indexes only readers need. A version being rebuilt gets them once it has caught up, just before
   * the swap: one bulk build is many times cheaper than keeping them current row by row.
   */
  createIndexes?(db: Kysely<any>): Promise<void>;
  apply(trx: Transaction<Database>, records: ProjectedRecord[]): Promise<void>;
}
