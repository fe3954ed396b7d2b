// The best hits of a phrase search without ranking every hit. A phrase of two common words ("weather
// football") has thousands of hits among tens of thousands of captions with both words (11k among
// 80k of the bench's 1M); ranking every hit means reading every one of those captions to check where
// the words stand.
//
// Why it is exact. A phrase query is a disjunction of chains, one per configuration the phrase
// means something different in ('weather' <-> 'footbal' | 'weath' <-> 'footb'), each chain lexemes at
// fixed distances. ts_rank_cd adds, per cover it finds, 0.1 / (1 + noise) over our vectors (no
// weights: all D), so a hit with one cover ranks at most 0.1, exactly 0.1 when the cover is the
// phrase itself — almost every hit. A rank above 0.1 needs two covers; each holds an occurrence of
// some chain that starts at the cover's first position, and the covers start at different positions,
// so the hit holds two different occurrences:
//   - of one chain X: the second is the first moved by some d != 0, so each lexeme of X occurs more
//     often than X names it (a finite set of positions is not its own translate): with m = the times
//     X names it, the repeat index's token `lexeme/(m + 1)` for every lexeme of X;
//   - of two chains X != Y: every lexeme of X and of Y is in it: the search index.
// Those candidates (few: both words twice) hold every hit above 0.1. The rest rank 0.1 at most, and
// ties are in log order, so after the candidates ranked above 0.1 come the hits ranking exactly 0.1
// in log order: read in a window of the log from its beginning (or from a cursor at 0.1). The page is
// proven when the window fills it; otherwise (rare phrases, hits past the window, a cursor below 0.1)
// the caller ranks every hit as before.
import { sql, type RawBuilder } from 'kysely';
import type { SearchFilter, SearchHitRow } from './queries.ts';
import { afterCursor, hitsInLogOrder, quoteLexeme, ranked, readLexeme, S1_RANK, TAIL_WINDOW, withoutS, type Db } from './search-cutoff.ts';

/** Chains a query may have (their pairs make one tsquery): 10, 45 pairs. */
const MAX_CHAINS = 10;
/** Distinct lexemes in them (a phrase of two words under ten configurations has 20 at most). */
const MAX_LEXEMES = 24;
/**
 * Below this many captions holding a phrase's words (the planner's estimate), ranking them all costs
 * about what the window does and always answers: a phrase's hits are a fraction of those captions (a
 * tenth in the bench's text), too few to fill a page from the window. A phrase of rare words ("boris
 * johnson") is ranked in a few ms without reading the window first.
 */
const RANK_ALL_UNDER = 10_000;

/**
 * The chains of a query that is only a disjunction of phrases (`'a' <-> 'b' | 'c' <2> 'd' <-> 'e'`,
 * as tsquery writes it: '' for a quote, \\ for a backslash), each chain's lexemes in order, or null
 * for anything else (a lone lexeme, &, !, parentheses, weights, prefixes, a distance of 0).
 */
export function phraseChains(tsq: string): string[][] | null {
  const chains: string[][] = [];
  let chain: string[] = [];
  let i = 0;
  for (;;) {
    const read = readLexeme(tsq, i);
    if (!read) return null;
    chain.push(read.lexeme);
    i = read.end;
    const op = /^ (?:<->|<[1-9][0-9]{0,4}>|\|) /.exec(tsq.slice(i, i + 10));
    if (i === tsq.length || op?.[0] === ' | ') {
      if (chain.length < 2) return null;
      chains.push(chain);
      chain = [];
      if (i === tsq.length) return chains;
    } else if (!op) return null;
    i += op![0].length;
  }
}

/** The repeat index's tokens that two occurrences of `chain` leave: each lexeme once more than the chain names it. */
export function twiceTokens(chain: string[]): string[] {
  const times = new Map<string, number>();
  for (const l of chain) times.set(l, (times.get(l) ?? 0) + 1);
  return [...times].map(([l, m]) => `${l}/${m + 1}`);
}

/** The one-cover rank (0.1) as Postgres's real compares it. */
const S1 = sql`${S1_RANK}::real`;

/**
 * A page of a phrase search's hits, or null when it cannot prove one or ranking every hit is as cheap
 * (the caller then ranks every hit). `window`: the rows of the log read for the hits at 0.1;
 * `rankAllUnder`: see RANK_ALL_UNDER.
 */
export async function phraseHitsByCutoff(
  db: Db,
  f: SearchFilter,
  { window = TAIL_WINDOW, rankAllUnder = RANK_ALL_UNDER }: { window?: number; rankAllUnder?: number } = {},
): Promise<SearchHitRow[] | null> {
  if (f.channel !== null || f.from !== undefined || f.to !== undefined) return null;
  const chains = phraseChains(f.tsq);
  if (!chains || chains.length > MAX_CHAINS) return null;
  const cursorRank = f.after ? Math.fround(Number(f.after.rank)) : Infinity;
  if (!(cursorRank >= Math.fround(S1_RANK))) return null; // below 0.1 (or no number): not a page it can prove
  const lexemes = [...new Set(chains.flat())];
  if (lexemes.length > MAX_LEXEMES) return null;

  const twice = (t: RawBuilder<unknown>) => {
    const repeats = sql`public.castlog_search_repeats(${t})`;
    const same = chains.map((c) => sql`${repeats} @> ${twiceTokens(c)}::text[]`);
    const pairs: string[] = [];
    for (let a = 0; a < chains.length; a++)
      for (let b = a + 1; b < chains.length; b++)
        pairs.push(`( ${[...new Set([...chains[a]!, ...chains[b]!])].map(quoteLexeme).join(' & ')} )`);
    if (pairs.length) same.push(sql`${t} @@ ${pairs.join(' | ')}::tsquery`);
    return sql`(${sql.join(same, sql` OR `)})`;
  };

  if ((await estimatedRows(db, f.tsq)) < rankAllUnder) return null;

  // Its statements read one snapshot: a page of one state of the table, as one statement gives.
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      // Every hit ranked above 0.1 is a candidate; those after the cursor, best first. The candidates
      // are fenced off (MATERIALIZED) so that the phrase is checked on them alone: with the search
      // index's bitmap joined in, Postgres would read every caption with both words and recheck the
      // repeat function's plpgsql on each.
      const above =
        cursorRank > Math.fround(S1_RANK)
          ? await ranked(
              trx,
              f,
              lexemes,
              sql`
              WITH c AS MATERIALIZED (
                SELECT f.channel, f.partition, f."offset", f.station, f.seq, f.text, f.start_ms, f.end_ms, f.lang, f.search_vector
                FROM caption_fragments f
                WHERE ${twice(sql.ref('f.search_vector'))}
              ), hits AS (
                SELECT c.*, ts_rank_cd(c.search_vector, ${f.tsq}::tsquery) AS rank
                FROM c WHERE c.search_vector @@ ${f.tsq}::tsquery
              )
              SELECT * FROM hits h WHERE h.rank > ${S1} ${afterCursor(f, 'h')}
              ORDER BY h.rank DESC, h.partition, h."offset"
              LIMIT ${f.limit}`,
            )
          : [];
      if (above.length === f.limit) return withoutS(above);
      // Then the hits at 0.1, in log order: from the cursor when it is at 0.1, else from the beginning.
      const need = f.limit - above.length;
      const fromCursor = f.after && cursorRank === Math.fround(S1_RANK);
      const at = await ranked(trx, f, lexemes, hitsInLogOrder(f, fromCursor ? f.after : undefined, window, sql`h.rank = ${S1}`, need));
      if (at.length < need) return null;
      return withoutS([...above, ...at]);
    });
}

/** How many captions the planner expects to hold the query's words (phrase distances aside): from the column's statistics. */
async function estimatedRows(db: Db, tsq: string): Promise<number> {
  const { rows } = await sql<{
    'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }];
  }>`EXPLAIN (FORMAT JSON) SELECT 1 FROM caption_fragments f WHERE f.search_vector @@ ${tsq}::tsquery`.execute(db);
  return rows[0]!['QUERY PLAN'][0].Plan['Plan Rows'];
}
