// The best hits of a one-word search without ranking every hit. A word in half the captions has half
// a million hits at 1M fragments; ranking them all (ts_rank_cd reads each hit's vector) took 0.9 s.
//
// Why it is exact: the full-text query of one word is a disjunction of lexemes (the word under each
// configuration, 'weather' | 'weath'), and ts_rank_cd of a disjunction over our vectors (no weights:
// all D, 0.1) is 0.1 per occurrence — every cover is one position with no noise — so a hit's rank
// is a function of S, the number of positions of the query's lexemes in it, strictly growing with S
// (the property test in test/integration/search-cutoff.test.ts holds the hits to the full ranking).
// A hit has S >= m (m >= 2) only if one lexeme occurs m times or more — found by the repeat index
// (search-sql.ts, REPEATS_SQL: lexeme/count tokens) — or two different lexemes occur in it — found
// by the search index. So for a threshold m, rank those candidates only: if the page's last hit has
// S >= m, no other hit (S < m) can rank above it, and the page is the page of the full ranking.
// Which m: the first statement ranks the first 2,001 hits (all of them, when there are fewer: that
// is the answer); if its page's last hit has S = s, at least a page of hits have S >= s, so m = s
// succeeds — m = s + 1 is tried first, having fewer candidates. Past m = 2 the rest of the hits all
// have S = 1, one rank, whose order is the log's: read them in primary-key order after the candidates.
//
// Any other query without a negation (several words, phrases) ranks at most 0.1 per position of its
// lexemes, so the same candidates with a page whose last hit ranks above 0.1 (m - 1) prove it too:
// a search of two words of which one is a stop word in English is the other word in English captions.
// It answers only when it can prove the answer; otherwise (another kind of query, a filter, few
// hits, hits too sparse for a log-order read) the caller ranks every hit as before.
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from '../database.ts';
import type { SearchFilter, SearchHitRow } from './queries.ts';
import { headlineSql } from './search-sql.ts';

/** Up to this many hits, ranking them all is cheap (a few ms): the first statement does it and is the answer. */
export const RANK_ALL_UP_TO = 2000;
/** Lexemes of a query the cut-off takes (their pairs make one tsquery): 12, 66 pairs. */
const MAX_LEXEMES = 12;
/** The rows read in log order for the hits of the lowest rank; fewer matches than needed in them: give up. */
export const TAIL_WINDOW = 20_000;

/**
 * The lexemes of a query that is only a disjunction of plain lexemes (`'a' | 'b'`, as tsquery
 * writes it: '' for a quote, \\ for a backslash), or null for anything else (phrases, &, !, weights, prefixes).
 */
export function disjunctionLexemes(tsq: string): string[] | null {
  const out: string[] = [];
  for (let i = 0; ; i += 3) {
    const read = readLexeme(tsq, i);
    if (!read) return null;
    out.push(read.lexeme);
    i = read.end;
    if (i === tsq.length) return [...new Set(out)];
    if (tsq.slice(i, i + 3) !== ' | ') return null;
  }
}

/**
 * The lexeme quoted at `i` as tsquery writes it ('' for a quote, \\ for a backslash) and the index
 * just past its closing quote, or null when no lexeme starts there or it does not end.
 */
export function readLexeme(tsq: string, i: number): { lexeme: string; end: number } | null {
  if (tsq[i] !== "'") return null;
  let lexeme = '';
  for (i++; i < tsq.length; i++) {
    const c = tsq[i]!;
    if (c === '\\') {
      if (i + 1 >= tsq.length) return null;
      lexeme += tsq[++i];
    } else if (c === "'") {
      if (tsq[i + 1] !== "'") return { lexeme, end: i + 1 };
      lexeme += "'";
      i++;
    } else lexeme += c;
  }
  return null;
}

/**
 * Every lexeme of a query with no negation, weight or prefix (`'a' & 'b' | 'c' <-> 'd'`), or null.
 * For such a query a hit's rank is at most 0.1 per position of these lexemes in it: each cover
 * ts_rank_cd counts begins at a distinct one and adds at most 0.1 (all weights D, noise >= 0).
 */
export function queryLexemes(tsq: string): string[] | null {
  const out: string[] = [];
  for (let i = 0; i < tsq.length; i++) {
    const c = tsq[i]!;
    if (c === '!') return null;
    if (c !== "'") continue;
    const read = readLexeme(tsq, i);
    if (!read || tsq[read.end] === ':') return null;
    out.push(read.lexeme);
    i = read.end - 1;
  }
  return out.length ? [...new Set(out)] : null;
}

/**
 * Whether one of the query's top-level alternatives is a lone lexeme (`'a' & 'b' | 'a'`: "a b" where
 * b is a stop word in English). Only then are its best hits few among many: in a query made of
 * phrases or conjunctions every hit has two lexemes, and the cut-off would rank them all anyway.
 */
export function hasLoneLexeme(tsq: string): boolean {
  let depth = 0;
  let start = 0;
  const parts: string[] = [];
  for (let i = 0; i < tsq.length; i++) {
    const c = tsq[i]!;
    if (c === "'") {
      for (i++; i < tsq.length; i++) {
        if (tsq[i] === '\\') i++;
        else if (tsq[i] === "'") {
          if (tsq[i + 1] !== "'") break;
          i++;
        }
      }
    } else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) {
      parts.push(tsq.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(tsq.slice(start));
  return parts.some((p) => disjunctionLexemes(p.trim())?.length === 1);
}

export type Db = Kysely<Database>;

export interface Ranked extends SearchHitRow {
  /** Positions of the query's lexemes in the hit (S). */
  s: number;
}

export const quoteLexeme = (l: string) => `'${l.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/** The tokens of the repeat index meaning "one of the lexemes at least m times". */
const tokensFrom = (lexemes: string[], m: number) => lexemes.map((l) => `${l}/${m}`);

/**
 * A page of `f` by the cut-off, or null when it cannot prove one (the caller then ranks every hit).
 * `rankAll` is the full ranking with the hits capped: it answers alone when there are at most `rankAllUpTo`.
 */
export async function searchHitsByCutoff(
  db: Db,
  f: SearchFilter,
  rankAll: (db: Db, cap: number) => Promise<{ rows: SearchHitRow[]; hits: number }>,
  rankAllUpTo = RANK_ALL_UP_TO,
): Promise<SearchHitRow[] | null> {
  if (f.channel !== null || f.from !== undefined || f.to !== undefined) return null;
  // A disjunction ranks exactly 0.1 per occurrence (S); any other query without negation at most that.
  const exact = disjunctionLexemes(f.tsq) !== null;
  const lexemes = queryLexemes(f.tsq);
  if (!lexemes || lexemes.length > MAX_LEXEMES || !(exact || hasLoneLexeme(f.tsq))) return null;
  // Its statements read one snapshot: a page of one state of the table, as one statement gives.
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const few = await rankAll(trx, rankAllUpTo);
      if (few.hits <= rankAllUpTo) return few.rows;

      // Two different lexemes in one hit: S >= 2 without a repeat.
      const pairs: string[] = [];
      for (let a = 0; a < lexemes.length; a++)
        for (let b = a + 1; b < lexemes.length; b++) pairs.push(`${quoteLexeme(lexemes[a]!)} & ${quoteLexeme(lexemes[b]!)}`);
      const candidate = (m: number, alias: string) => {
        const t = sql.ref(`${alias}.search_vector`);
        // NULL where the hit has no repeated lexeme: the tail's NOT needs it read as false.
        const repeats = sql`public.castlog_search_repeats(${t}) && ${tokensFrom(lexemes, m)}::text[]`;
        return pairs.length ? sql`(${repeats} OR ${t} @@ ${pairs.join(' | ')}::tsquery)` : repeats;
      };

      // S of the sampled page's last hit (rank 0.1 per occurrence, or at most that): a lower bound of the true page's.
      const last = few.rows.length === f.limit ? few.rows.at(-1)!.rank * 10 : 0;
      const sampled = exact ? Math.round(last) : Math.floor(last + 1e-6);
      const ladder = sampled > 2 ? [sampled + 1, sampled, 2] : [3, 2];
      for (const m of ladder) {
        const rows = await ranked(
          trx,
          f,
          lexemes,
          sql`
          WITH hits AS (
            SELECT f.channel, f.partition, f."offset", f.station, f.seq, f.text, f.start_ms, f.end_ms, f.lang, f.search_vector,
                   ts_rank_cd(f.search_vector, ${f.tsq}::tsquery) AS rank
            FROM caption_fragments f
            WHERE ${candidate(m, 'f')} AND f.search_vector @@ ${f.tsq}::tsquery
          )
          SELECT * FROM hits h WHERE true ${afterCursor(f, 'h')}
          ORDER BY h.rank DESC, h.partition, h."offset"
          LIMIT ${f.limit}`,
        );
        // Exact: S >= m ranks above every other hit (S < m). Otherwise: above 0.1 (m - 1), the most a
        // hit with S < m can rank (the margin covers the real's rounding).
        if (rows.length === f.limit && (exact ? rows.at(-1)!.s >= m : rows.at(-1)!.rank > 0.1 * (m - 1) + 1e-4)) return withoutS(rows);
        if (m > 2 || !exact) continue;
        // Every candidate after the cursor is in rows (S >= 2 for all of them); the rest have S = 1:
        // the lowest rank, in log order. Where they start: after the cursor if it is at that rank, else
        // from the log's beginning (a cursor above that rank has every S = 1 hit after it).
        const need = f.limit - rows.length;
        const fromCursor = f.after && Math.fround(Number(f.after.rank)) <= Math.fround(S1_RANK);
        const tail = await ranked(
          trx,
          f,
          lexemes,
          hitsInLogOrder(
            f,
            fromCursor ? f.after : undefined,
            TAIL_WINDOW,
            sql`NOT coalesce(${candidate(2, 'h')}, false) ${afterCursor(f, 'h')}`,
            need,
          ),
        );
        if (tail.length < need) return null;
        return withoutS([...rows, ...tail]);
      }
      return null;
    });
}

/**
 * The first `limit` hits in log order that meet `where` (over `h`, a hit with its rank) among the
 * `window` captions after `start` (or from the log's beginning): a page's hits of the lowest rank
 * it ranks, which tie, so their order is the log's.
 */
export function hitsInLogOrder(
  f: SearchFilter,
  start: { partition: number; offset: number } | undefined,
  window: number,
  where: RawBuilder<unknown>,
  limit: number,
): RawBuilder<unknown> {
  const from = start ? sql`(${start.partition}::int, ${start.offset}::bigint)` : sql`(-1, -1::bigint)`;
  return sql`
    WITH w AS (
      SELECT f.channel, f.partition, f."offset", f.station, f.seq, f.text, f.start_ms, f.end_ms, f.lang, f.search_vector
      FROM caption_fragments f
      WHERE (f.partition, f."offset") > ${from}
      ORDER BY f.partition, f."offset"
      LIMIT ${window}
    ), hits AS (
      SELECT w.*, ts_rank_cd(w.search_vector, ${f.tsq}::tsquery) AS rank
      FROM w WHERE w.search_vector @@ ${f.tsq}::tsquery
    )
    SELECT * FROM hits h WHERE ${where}
    ORDER BY h.partition, h."offset"
    LIMIT ${limit}`;
}

/** `AND` the hits of `alias` (with its rank) that come after the filter's cursor, if it has one. */
export function afterCursor(f: SearchFilter, alias: string): RawBuilder<unknown> {
  const col = (c: string) => sql.ref(`${alias}.${c}`);
  return f.after
    ? sql`AND (${col('rank')} < ${f.after.rank}::real OR (${col('rank')} = ${f.after.rank}::real
           AND (${col('partition')}, ${col('offset')}) > (${f.after.partition}, ${f.after.offset})))`
    : sql``;
}

export const withoutS = (rows: Ranked[]): SearchHitRow[] => rows.map(({ s: _s, ...r }) => r);

/** ts_rank_cd of a hit with one occurrence (S = 1): 0.1 as a real. */
export const S1_RANK = 0.1;

/** Runs a statement selecting hits (with their search_vector and rank) and adds S, rank_text and the headline. */
export async function ranked(db: Db, f: SearchFilter, lexemes: string[], hits: RawBuilder<unknown>): Promise<Ranked[]> {
  const { rows } = await sql<Ranked>`
    WITH top AS (${hits})
    SELECT t.channel, t.partition, t."offset", t.station, t.seq, t.text, t.start_ms, t.end_ms, t.lang, t.rank, t.rank::text AS rank_text,
           ${headlineSql(sql.ref('t.text'), sql.ref('t.lang'), sql`${f.tsq}::tsquery`, f.marks)} AS headline,
           (SELECT coalesce(sum(pg_catalog.cardinality(u.positions)), 0)::int FROM unnest(t.search_vector) u
            WHERE u.lexeme = ANY(${lexemes}::text[])) AS s
    FROM top t
    ORDER BY t.rank DESC, t.partition, t."offset"`.execute(db);
  return rows;
}
