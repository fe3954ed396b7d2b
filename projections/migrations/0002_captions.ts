import { sql, type Kysely } from 'kysely';
import { ensureSearchFunctionsV1 } from './search-functions-v1.ts';

// The caption read model and the projections' positions. Frozen: the tables as they were made when
// this ran; later changes are later migrations (and new projection versions make their own tables).
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE projection_positions (
    projection text NOT NULL, topic text NOT NULL, partition integer NOT NULL, next_offset bigint NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    CONSTRAINT projection_positions_pk PRIMARY KEY (projection, topic, partition))`.execute(db);
  await sql`CREATE TABLE caption_fragments (
    channel text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL, station text NOT NULL, seq bigint NOT NULL,
    text text NOT NULL, start_ms bigint NOT NULL, end_ms bigint NOT NULL, mode text, lang text, received_at_ms bigint NOT NULL,
    CONSTRAINT caption_fragments_pk PRIMARY KEY (partition, "offset"))`.execute(db);
  await ensureSearchFunctionsV1(db);
  await sql`ALTER TABLE caption_fragments
    ADD COLUMN IF NOT EXISTS search_vector tsvector GENERATED ALWAYS AS (public.castlog_search_vector(lang, text)) STORED`.execute(db);
  await sql`CREATE TABLE channels (
    id text PRIMARY KEY, fragment_count bigint NOT NULL, last_fragment_ms bigint NOT NULL, last_position text NOT NULL)`.execute(db);
  await sql`CREATE TABLE station_seqs (channel text NOT NULL, station text NOT NULL, last_seq bigint NOT NULL,
    CONSTRAINT station_seqs_pk PRIMARY KEY (channel, station))`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS caption_fragments_by_channel ON caption_fragments (channel, "offset")`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS caption_fragments_by_time ON caption_fragments (channel, start_ms)`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS caption_fragments_search
    ON caption_fragments USING gin (search_vector) WITH (fastupdate = on)`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS caption_fragments_by_start
    ON caption_fragments USING brin (start_ms) WITH (autosummarize = on)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['station_seqs', 'channels', 'caption_fragments', 'projection_positions']) await db.schema.dropTable(t).execute();
}
