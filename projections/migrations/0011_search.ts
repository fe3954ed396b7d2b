import { sql, type Kysely } from 'kysely';
import { ensureSearchFunctionsV1 } from './search-functions-v1.ts';

/** The search column and its indexes on one version's caption_fragments, as they were made then. */
async function addSearch(db: Kysely<unknown>, schema: string): Promise<void> {
  const table = sql.id(schema, 'caption_fragments');
  await ensureSearchFunctionsV1(db);
  await sql`ALTER TABLE ${table}
    ADD COLUMN IF NOT EXISTS search_vector tsvector GENERATED ALWAYS AS (public.castlog_search_vector(lang, text)) STORED`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS caption_fragments_search ON ${table} USING gin (search_vector) WITH (fastupdate = on)`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS caption_fragments_by_start ON ${table} USING brin (start_ms) WITH (autosummarize = on)`.execute(db);
}

// Full-text search: every existing captions version gets the generated search_vector column and
// its GIN index (new versions get them from createCaptionTables). Adding a stored generated column
// rewrites the table once, under an exclusive lock: expect the projector and history reads to wait
// for it on a large table. The public caption_fragments view is a SELECT * frozen when it was
// made, so it is made again to show the new column.
export async function up(db: Kysely<unknown>): Promise<void> {
  const { rows } = await sql<{
    nspname: string;
  }>`SELECT nspname FROM pg_namespace WHERE nspname ~ '^captions_v[0-9]+$' ORDER BY nspname`.execute(db);
  for (const { nspname } of rows) await addSearch(db, nspname);
  const { rows: tables } = await sql<{ schema: string }>`
    SELECT table_schema AS schema FROM information_schema.tables
    WHERE table_schema = 'public' AND table_name = 'caption_fragments' AND table_type = 'BASE TABLE'`.execute(db);
  if (tables.length) {
    // Not yet versioned (0010 not run): the table itself is in public.
    await addSearch(db, 'public');
    return;
  }
  const { rows: serving } = await sql<{ current: number }>`SELECT current FROM projection_versions WHERE name = 'captions'`.execute(db);
  if (!serving.length) return; // no captions version yet: ensureRegistered makes the view with the column
  const schema = `captions_v${serving[0]!.current}`;
  await sql`DROP VIEW IF EXISTS caption_fragments`.execute(db);
  await sql`CREATE VIEW caption_fragments AS SELECT * FROM ${sql.id(schema, 'caption_fragments')}`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('0011_search cannot be undone automatically');
}
