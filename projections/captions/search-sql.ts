// Full-text search over caption fragments: the SQL functions behind the `search_vector` column of
// every captions version, and the column and index themselves.
//
// How languages meet (the column is built once per row, on insert, by Postgres):
//   document = to_tsvector(<config of the fragment's lang>, text)
//   query    = websearch_to_tsquery(<config>, q) OR-ed over every configuration we map to (or,
//              with `lang=xx`, over that language's configuration and `simple` only).
// The document is stemmed in its own language only, not also indexed unstemmed ("lang || simple"):
// that second parse doubled the cost of every insert (see the measurements in README, Search),
// and the query side gets the same reach by trying q under each configuration instead. So
// "running" finds "runs" in English captions, "élection" finds "élections" in French ones, and a
// word in a caption of an unmapped or missing language (indexed with `simple`) is found as typed.
// Phrases ("quoted") keep their word distance: stop words the stemmer drops still count as
// positions, on both sides. The price: a query made only of a language's stop words ("to be or not
// to be") finds nothing in that language's captions, as in any stemmed search.
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { IndexBuild } from '../projection.ts';
import { LOCKS, lockKey } from '../../infra/locks.ts';

/** BCP-47 primary language subtag -> Postgres text search configuration. Anything else: simple. */
export const LANGUAGE_CONFIGS: Readonly<Record<string, string>> = {
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

// The functions are part of every stored search_vector: their output must never change for the same
// input while rows computed with them exist. A different mapping needs new function names (a _2
// suffix) used by a new projection version, never CREATE OR REPLACE of these.
export const CONFIG_FN = 'castlog_ts_config';
export const VECTOR_FN = 'castlog_search_vector';
export const QUERY_FN = 'castlog_search_query';
export const REPEATS_FN = 'castlog_search_repeats';

/**
 * The repeat index's function, as SQL: for each lexeme of a document that occurs c > 1 times, the
 * tokens `lexeme/2` … `lexeme/c` ('storm':2,9,14 -> storm/2, storm/3), NULL when none repeats. So
 * "some lexeme of the query at least m times" is one token per lexeme to look up. Searches for one
 * word (or its variants) rank by how often it occurs (ts_rank_cd of a disjunction is 0.1 per
 * occurrence): this index finds the best-ranked hits of a word in half the captions without ranking
 * every hit (search-cutoff.ts). The count is after the last '/', so a lexeme with a '/' stays
 * unambiguous. The strpos test is a shortcut: no ',' in the vector's text, no lexeme with two
 * positions (most captions), and plpgsql's query is skipped.
 */
const REPEATS_SQL = `CREATE OR REPLACE FUNCTION public.${REPEATS_FN}(v tsvector) RETURNS text[]
  LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $f$
  BEGIN
    IF pg_catalog.strpos(v::pg_catalog.text, ',') = 0 THEN RETURN NULL; END IF;
    RETURN ARRAY(SELECT u.lexeme OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) k
                 FROM pg_catalog.unnest(v) AS u, pg_catalog.generate_series(2, pg_catalog.cardinality(u.positions)) AS k);
  END $f$`;

/** Creates the repeat index's function (REPEATS_SQL) if it is missing. */
export async function ensureRepeatsFunction(db: Kysely<any>): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(${lockKey(LOCKS.searchFunctions)})`.execute(db);
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace
    WHERE ns.nspname = 'public' AND p.proname = ${REPEATS_FN}`.execute(db);
  if (rows[0]!.n === 0) await sql.raw(REPEATS_SQL).execute(db);
}

/**
 * Creates the search functions in schema public if they are missing. Languages whose configuration
 * this Postgres lacks (older servers have fewer) map to simple.
 */
export async function ensureSearchFunctions(db: Kysely<any>): Promise<void> {
  // Serialize creators (a migration and a rebuild, or two fresh databases' migrations racing on a
  // shared cluster would otherwise both try to insert the same pg_proc row).
  await sql`SELECT pg_advisory_xact_lock(${lockKey(LOCKS.searchFunctions)})`.execute(db);
  const { rows } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace
    WHERE ns.nspname = 'public' AND p.proname IN (${CONFIG_FN}, ${VECTOR_FN}, ${QUERY_FN})`.execute(db);
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
      `CREATE OR REPLACE FUNCTION public.${CONFIG_FN}(lang text) RETURNS regconfig
         LANGUAGE sql IMMUTABLE PARALLEL SAFE
         AS $f$ SELECT CASE lower(substring(lang from '^[A-Za-z]+')) ${whens} ELSE 'pg_catalog.simple'::regconfig END $f$`,
    )
    .execute(db);
  await sql
    .raw(
      `CREATE OR REPLACE FUNCTION public.${VECTOR_FN}(lang text, body text) RETURNS tsvector
         LANGUAGE sql IMMUTABLE PARALLEL SAFE
         AS $f$ SELECT pg_catalog.to_tsvector(public.${CONFIG_FN}(lang), body) $f$`,
    )
    .execute(db);
  // The query: q under every configuration (or under lang's and simple), OR-ed, each distinct
  // variant once (English and Dutch often agree on a word; a repeated branch would only inflate
  // ranks). Empty variants (all stop words in that language) drop out.
  await sql
    .raw(
      `CREATE OR REPLACE FUNCTION public.${QUERY_FN}(lang text, q text) RETURNS tsquery
         LANGUAGE plpgsql STABLE PARALLEL SAFE AS $f$
         DECLARE
           cfg regconfig;
           v tsquery;
           seen text[] := '{}';
           result tsquery := ''::tsquery;
         BEGIN
           FOREACH cfg IN ARRAY CASE WHEN lang IS NULL THEN ARRAY['pg_catalog.simple', ${configs}]::regconfig[]
                                     ELSE ARRAY['pg_catalog.simple'::regconfig, public.${CONFIG_FN}(lang)] END LOOP
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

/** The generated column's expression; also what the GIN index covers. */
export const SEARCH_VECTOR_EXPR = sql`public.castlog_search_vector(lang, text)`;

/** Adds the stored search_vector column to a caption_fragments table (in `schema`, or the current search_path). */
export async function addSearchColumn(db: Kysely<any>, schema?: string): Promise<void> {
  await ensureSearchFunctions(db);
  await sql`ALTER TABLE ${fragments(schema)}
    ADD COLUMN IF NOT EXISTS search_vector tsvector GENERATED ALWAYS AS (${SEARCH_VECTOR_EXPR}) STORED`.execute(db);
}

/**
 * The GIN index over search_vector, the GIN index of repeated lexemes (REPEATS_SQL), and a BRIN
 * index on start_ms. fastupdate (the default, said out loud): rows inserted into a serving version
 * go to the index's pending list and are merged in bulk, several times cheaper per row than
 * inserting into the tree directly. The BRIN index serves searches over a time range on every
 * channel (the btree index starts with the channel): rows
 * arrive roughly in time order, so it prunes well and costs next to nothing to keep; it turned a
 * one-hour search over 300k rows from 207 ms into 28 ms.
 */
export const SEARCH_INDEXES: IndexBuild[] = [
  (db) =>
    sql`CREATE INDEX IF NOT EXISTS caption_fragments_search ON caption_fragments USING gin (search_vector) WITH (fastupdate = on)`.execute(
      db,
    ),
  (db) => addRepeatsIndex(db),
  (db) =>
    sql`CREATE INDEX IF NOT EXISTS caption_fragments_by_start ON caption_fragments USING brin (start_ms) WITH (autosummarize = on)`.execute(
      db,
    ),
];

/** The repeat index (see REPEATS_SQL); its function is made first if missing. */
export async function addRepeatsIndex(db: Kysely<any>, schema?: string): Promise<void> {
  await ensureRepeatsFunction(db);
  await sql`CREATE INDEX IF NOT EXISTS caption_fragments_repeats
    ON ${fragments(schema)} USING gin (public.castlog_search_repeats(search_vector)) WITH (fastupdate = on)`.execute(db);
}

const fragments = (schema?: string) => (schema ? sql.id(schema, 'caption_fragments') : sql.id('caption_fragments'));

/**
 * A caption's words around its matches of `tsquery`, each match between `marks.start` and
 * `marks.stop` (marks already in the text are blanked first), under the caption's language: the
 * snippet search pages and alert matches show.
 */
export function headlineSql(
  text: RawBuilder<unknown>,
  lang: RawBuilder<unknown>,
  tsquery: RawBuilder<unknown>,
  marks: { start: string; stop: string },
): RawBuilder<string> {
  const options = `StartSel=${marks.start}, StopSel=${marks.stop}, MinWords=12, MaxWords=30, ShortWord=2`;
  const blanked = sql`translate(${text}, ${marks.start + marks.stop}, '  ')`;
  return sql<string>`ts_headline(public.castlog_ts_config(${lang}), ${blanked}, ${tsquery}, ${options})`;
}
