import { sql, type Kysely } from 'kysely';

// The repeat index (projections/captions/search-sql.ts, REPEATS_SQL) on every captions version that
// already has its readers' indexes; a version still being built gets it with the others
// (Projection.indexes). The function is a frozen copy made here only if missing: its output is part of
// every index built on it and must never change.
const REPEATS_FN_V1 = `CREATE OR REPLACE FUNCTION public.castlog_search_repeats(v tsvector) RETURNS text[]
  LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $f$
  BEGIN
    IF pg_catalog.strpos(v::pg_catalog.text, ',') = 0 THEN RETURN NULL; END IF;
    RETURN ARRAY(SELECT u.lexeme OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) k
                 FROM pg_catalog.unnest(v) AS u, pg_catalog.generate_series(2, pg_catalog.cardinality(u.positions)) AS k);
  END $f$`;

export async function up(db: Kysely<unknown>): Promise<void> {
  const { rows: fn } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace
    WHERE ns.nspname = 'public' AND p.proname = 'castlog_search_repeats'`.execute(db);
  if (fn[0]!.n === 0) await sql.raw(REPEATS_FN_V1).execute(db);
  // Tables that have the search index have their readers' indexes: the serving versions, older ones,
  // and an unversioned table in public.
  const { rows } = await sql<{ schema: string }>`
    SELECT schemaname AS schema FROM pg_indexes
    WHERE tablename = 'caption_fragments' AND indexname = 'caption_fragments_search'
      AND (schemaname = 'public' OR schemaname ~ '^captions_v[0-9]+$')`.execute(db);
  for (const { schema } of rows)
    await sql`CREATE INDEX IF NOT EXISTS caption_fragments_repeats ON ${sql.id(schema, 'caption_fragments')}
      USING gin (public.castlog_search_repeats(search_vector)) WITH (fastupdate = on)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  const { rows } = await sql<{ schema: string }>`
    SELECT schemaname AS schema FROM pg_indexes WHERE indexname = 'caption_fragments_repeats'`.execute(db);
  for (const { schema } of rows) await sql`DROP INDEX IF EXISTS ${sql.id(schema, 'caption_fragments_repeats')}`.execute(db);
}
