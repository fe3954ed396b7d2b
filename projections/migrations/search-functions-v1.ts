// A frozen copy of the full-text search functions as migrations 0002 and 0011 made them. Never edit:
// every stored search_vector was computed with these functions, so their output must not change.
// A different language mapping means new function names, made by a new migration (see
// projections/captions/search-sql.ts, which keeps creating the same functions for new versions).
import { sql, type Kysely } from 'kysely';

const LANGUAGE_CONFIGS: Readonly<Record<string, string>> = {
  ar: 'arabic',
  hy: 'armenian',
  eu: 'basque',
  ca: 'catalan',
  da: 'danish',
  nl: 'dutch',
  en: 'english',
  fi: 'finnish',
  fr: 'french',
  de: 'german',
  el: 'greek',
  hi: 'hindi',
  hu: 'hungarian',
  id: 'indonesian',
  ga: 'irish',
  it: 'italian',
  lt: 'lithuanian',
  ne: 'nepali',
  nb: 'norwegian',
  nn: 'norwegian',
  no: 'norwegian',
  pt: 'portuguese',
  ro: 'romanian',
  ru: 'russian',
  sr: 'serbian',
  es: 'spanish',
  sv: 'swedish',
  ta: 'tamil',
  tr: 'turkish',
  yi: 'yiddish',
};

/** Creates castlog_ts_config, castlog_search_vector and castlog_search_query in public if missing. */
export async function ensureSearchFunctionsV1(db: Kysely<unknown>): Promise<void> {
  // LOCKS.searchFunctions (infra/locks.ts): the same lock as today's code takes to create them.
  await sql`SELECT pg_advisory_xact_lock(hashtextextended('castlog:search-functions', 0))`.execute(db);
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace
    WHERE ns.nspname = 'public' AND p.proname IN ('castlog_ts_config', 'castlog_search_vector', 'castlog_search_query')`.execute(db);
  if (rows[0]!.n === 3) return;
  const { rows: have } = await sql<{
    cfgname: string;
  }>`SELECT cfgname FROM pg_ts_config WHERE cfgnamespace = 'pg_catalog'::regnamespace`.execute(db);
  const available = new Set(have.map((r) => r.cfgname));
  const pairs = Object.entries(LANGUAGE_CONFIGS).filter(([, cfg]) => available.has(cfg));
  // Literal SQL built from our own constant table above (letters only), never from input.
  const whens = pairs.map(([tag, cfg]) => `WHEN '${tag}' THEN 'pg_catalog.${cfg}'::regconfig`).join(' ');
  const configs = [...new Set(pairs.map(([, cfg]) => `'pg_catalog.${cfg}'`))].join(', ');
  await sql
    .raw(
      `CREATE OR REPLACE FUNCTION public.castlog_ts_config(lang text) RETURNS regconfig
         LANGUAGE sql IMMUTABLE PARALLEL SAFE
         AS $f$ SELECT CASE lower(substring(lang from '^[A-Za-z]+')) ${whens} ELSE 'pg_catalog.simple'::regconfig END $f$`,
    )
    .execute(db);
  await sql
    .raw(
      `CREATE OR REPLACE FUNCTION public.castlog_search_vector(lang text, body text) RETURNS tsvector
         LANGUAGE sql IMMUTABLE PARALLEL SAFE
         AS $f$ SELECT pg_catalog.to_tsvector(public.castlog_ts_config(lang), body) $f$`,
    )
    .execute(db);
  // The query: q under every configuration (or under lang's and simple), OR-ed, each distinct
  // variant once (English and Dutch often agree on a word; a repeated branch would only inflate
  // ranks). Empty variants (all stop words in that language) drop out.
  await sql
    .raw(
      `CREATE OR REPLACE FUNCTION public.castlog_search_query(lang text, q text) RETURNS tsquery
         LANGUAGE plpgsql STABLE PARALLEL SAFE AS $f$
         DECLARE
           cfg regconfig;
           v tsquery;
           seen text[] := '{}';
           result tsquery := ''::tsquery;
         BEGIN
           FOREACH cfg IN ARRAY CASE WHEN lang IS NULL THEN ARRAY['pg_catalog.simple', ${configs}]::regconfig[]
                                     ELSE ARRAY['pg_catalog.simple'::regconfig, public.castlog_ts_config(lang)] END LOOP
             v := pg_catalog.websearch_to_tsquery(cfg, q);
             IF pg_catalog.numnode(v) > 0 AND NOT (v::text = ANY (seen)) THEN
               seen := seen || v::text;
               result := CASE WHEN pg_catalog.numnode(result) = 0 THEN v ELSE result || v END;
             END IF;
           END LOOP;
           RETURN result;
         END $f$`,
    )
    .execute(db);
}
