// The caption read model's tables. Each projection version creates them in its own schema.
import type { Kysely } from 'kysely';
import type { IndexBuild } from '../projection.ts';
import { SEARCH_INDEXES, addSearchColumn } from './search-sql.ts';

export const CAPTION_TABLES = ['caption_fragments', 'channels'];

/** The columns readers of a fragment need (not the search vector, which can be large). */
export const FRAGMENT_COLUMNS = ['channel', 'partition', 'offset', 'station', 'seq', 'text', 'start_ms', 'end_ms', 'mode', 'lang'] as const;

/** The last seq applied per station and channel: a fragment not above it is a repeat. */
export async function createStationSeqs(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('station_seqs')
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('station', 'text', (c) => c.notNull())
    .addColumn('last_seq', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('station_seqs_pk', ['channel', 'station'])
    .execute();
}

export async function createCaptionTables(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('caption_fragments')
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('partition', 'integer', (c) => c.notNull())
    .addColumn('offset', 'bigint', (c) => c.notNull())
    .addColumn('station', 'text', (c) => c.notNull())
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('start_ms', 'bigint', (c) => c.notNull())
    .addColumn('end_ms', 'bigint', (c) => c.notNull())
    .addColumn('mode', 'text')
    .addColumn('lang', 'text')
    .addColumn('received_at_ms', 'bigint', (c) => c.notNull())
    // Repeats never get here (station_seqs drops them), so the log position is the only key.
    .addPrimaryKeyConstraint('caption_fragments_pk', ['partition', 'offset'])
    .execute();
  // Full-text search: a generated tsvector per fragment (see search-sql.ts).
  await addSearchColumn(db);
  await db.schema
    .createTable('channels')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('fragment_count', 'bigint', (c) => c.notNull())
    .addColumn('last_fragment_ms', 'bigint', (c) => c.notNull())
    .addColumn('last_position', 'text', (c) => c.notNull())
    .execute();
  await createStationSeqs(db);
}

/** History, export and search read through these; the projection itself never does. */
export const CAPTION_INDEXES: IndexBuild[] = [
  (db) =>
    db.schema.createIndex('caption_fragments_by_channel').ifNotExists().on('caption_fragments').columns(['channel', 'offset']).execute(),
  (db) =>
    db.schema.createIndex('caption_fragments_by_time').ifNotExists().on('caption_fragments').columns(['channel', 'start_ms']).execute(),
  ...SEARCH_INDEXES,
];
