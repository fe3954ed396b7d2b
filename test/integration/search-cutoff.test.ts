// The rank cut-off (projections/captions/search-cutoff.ts) answers a one-word search from its
// best-ranked candidates instead of ranking every hit: every page it gives must be the page the full
// ranking gives — the same hits, ranks and order, ties in log order — through the last page.
// Fragments go straight into the serving version's table (as the search bench loads them), with
// words repeated at random so ranks spread and tie, and a word with several lexemes: "running"
// is 'running' in captions without a language and 'run' in English ones, and some have both.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MARKS } from '../../domain/captions/snippet.ts';
import { rankAll, searchQuery, type SearchFilter } from '../../projections/captions/queries.ts';
import { disjunctionLexemes, hasLoneLexeme, queryLexemes, searchHitsByCutoff } from '../../projections/captions/search-cutoff.ts';
import { phraseHitsByCutoff } from '../../projections/captions/search-phrase-cutoff.ts';
import { System } from '../support/system.ts';

let sys: System;
const N = 3000;
// 'the' is a stop word in English: only the captions without a language keep it.
// 'run' is what English makes of "runs" and "running": a caption without a language can hold both "run storm" and "runs storm".
const WORDS = [
  'storm',
  'storm',
  'storm',
  'coast',
  'coast',
  'running',
  'runs',
  'run',
  'ferry',
  'tide',
  'bulletin',
  'harbour',
  'gale',
  'the',
];

beforeAll(async () => {
  sys = await System.create();
  await sql`SELECT setseed(0.25)`.execute(sys.db);
  // 2 to 9 words each from WORDS (storm in about 3 of 4 captions), a third without a language.
  await sql`
    INSERT INTO captions_v1.caption_fragments
      (channel, partition, "offset", station, seq, text, start_ms, end_ms, mode, lang, received_at_ms)
    SELECT 'cut.ch' || (i % 7), (i % 7)::int, i / 7, 'cut-station', i / 7 + 1,
           (SELECT string_agg((${WORDS}::text[])[1 + floor(random() * ${WORDS.length})::int], ' ')
            FROM generate_series(1, 2 + (i % 8)::int) AS w(k) WHERE i >= 0),
           1700000000000 + i * 1000, 1700000000000 + i * 1000 + 900, 'rollup', CASE WHEN i % 3 = 0 THEN NULL ELSE 'en' END,
           1700000000000 + i * 1000
    FROM generate_series(0, ${N - 1}) AS s(i)`.execute(sys.db);
  await sql`ANALYZE captions_v1.caption_fragments`.execute(sys.db);
  await sys.start('api');
});
afterAll(() => sys?.stop());

const filterFor = async (q: string, limit: number): Promise<SearchFilter> => ({
  tsq: await searchQuery(sys.db, null, q),
  channel: null,
  limit,
  marks: MARKS,
});

describe('search rank cut-off', () => {
  it('reads a one-word query as its lexemes, and nothing else as one', () => {
    expect(disjunctionLexemes(`'weather' | 'weath'`)).toEqual(['weather', 'weath']);
    expect(disjunctionLexemes(`'it''s' | 'a\\\\b'`)).toEqual(["it's", 'a\\b']);
    for (const other of [`'a' & 'b'`, `'a' <-> 'b'`, `!'a'`, `'a':*`, `'a':AB | 'b'`, `( 'a' | 'b' ) & 'c'`, `'a`, ``])
      expect(disjunctionLexemes(other)).toBeNull();
    // Other queries: their lexemes unless negated, weighted or prefixed; whether one alternative is a lone lexeme.
    expect(queryLexemes(`'storm' & 'the' | 'storm' | 'it''s' <-> 'a\\\\b'`)).toEqual(['storm', 'the', "it's", 'a\\b']);
    for (const other of [`'a' & !'b'`, `'a':* | 'b'`, `'a' & 'b':A`]) expect(queryLexemes(other)).toBeNull();
    expect(hasLoneLexeme(`'storm' & 'the' | 'storm'`)).toBe(true);
    expect(hasLoneLexeme(`'storm' <-> 'the' | 'storm' <-> 'tide'`)).toBe(false);
    expect(hasLoneLexeme(`( 'storm' | 'tide' ) & 'the'`)).toBe(false);
  });

  it('gives every page of a one-word search (or one with a lone word in English) exactly as ranking every hit does', async () => {
    // "storm the" and "\"storm the\"": 'storm' & 'the' (or a phrase) in captions without a language, 'storm' alone in English ones.
    for (const q of ['storm', 'coast', 'running', 'ferry', 'storm the', '"storm the"', 'tide the'])
      for (const limit of [1, 7, 40]) {
        const f = await filterFor(q, limit + 1);
        let pages = 0;
        let cut = 0;
        for (;;) {
          const full = (await rankAll(sys.db, f)).rows;
          // A cap of 50 so these 3000 captions take the cut-off's way (the API's is 2000).
          const got = await searchHitsByCutoff(sys.db, f, (trx, cap) => rankAll(trx, f, cap), 50);
          if (got) {
            cut++;
            expect(got, `${q}, limit ${limit}, page ${pages + 1}`).toEqual(full);
          }
          pages++;
          if (full.length <= limit || pages > 12) break;
          const last = full[limit - 1]!;
          f.after = { rank: last.rank_text, partition: last.partition, offset: last.offset };
        }
        // The cut-off answered (it gives up only where it cannot prove a page).
        expect(cut, `${q}, limit ${limit}`).toBeGreaterThan(0);
      }
  });

  it('gives every page of a phrase search exactly as ranking every hit does, generated phrases too', async () => {
    // Phrases that repeat ("storm coast storm coast": 0.2), name a word twice ("storm storm"), mean
    // different lexemes by language ("running storm"; "runs storm", whose two meanings can both be in
    // a caption without a language, each once: 0.2 by two phrases), keep a stop word's place ("storm the coast": a
    // distance of 2 in English, ranking below 0.1) or are made at random from the captions' words.
    let seed = 11;
    const rand = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    const fixed = [
      '"storm coast"',
      '"storm storm"',
      '"running storm"',
      '"runs storm"',
      '"coast storm tide"',
      '"storm the coast"',
      '"gale harbour"',
    ];
    const generated = Array.from(
      { length: 14 },
      () => `"${Array.from({ length: 2 + rand(2) }, () => WORDS[rand(WORDS.length)]).join(' ')}"`,
    );
    let answered = 0;
    for (const q of [...fixed, ...generated])
      for (const [limit, window] of [
        [1, 20_000],
        [7, 20_000],
        [40, 20_000],
        [7, 60],
      ] as const) {
        const f = await filterFor(q, limit + 1);
        for (let page = 1; page <= 12; page++) {
          const full = (await rankAll(sys.db, f)).rows;
          // No gate on the captions holding the words: these 3,000 captions are far fewer than the API's 10,000.
          const got = await phraseHitsByCutoff(sys.db, f, { window, rankAllUnder: 0 });
          if (got) {
            answered++;
            expect(got, `${q}, limit ${limit}, window ${window}, page ${page}`).toEqual(full);
          }
          if (full.length <= limit) break;
          const last = full[limit - 1]!;
          f.after = { rank: last.rank_text, partition: last.partition, offset: last.offset };
        }
      }
    // It answers for the phrases that rank 0.1 (not "storm the coast" in English, nor a phrase of the stop word alone).
    for (const q of ['"storm coast"', '"storm storm"', '"running storm"', '"coast storm tide"']) {
      const f = await filterFor(q, 8);
      expect(await phraseHitsByCutoff(sys.db, f, { rankAllUnder: 0 }), q).not.toBeNull();
      // With the API's gate, so few captions holding the words are ranked in full instead.
      expect(await phraseHitsByCutoff(sys.db, f), q).toBeNull();
    }
    expect(answered).toBeGreaterThan(100);
  });

  it('the API pages through a word in most captions best first, each hit once, ties in log order', async () => {
    const f = await filterFor('storm', 101);
    const full = (await rankAll(sys.db, { ...f, limit: N })).rows;
    expect(full.length).toBeGreaterThan(2000); // past the API's cap: the cut-off answers
    const seen: string[] = [];
    let after = '';
    for (let page = 0; page < 4; page++) {
      const res = await sys.get(`/v1/search?${new URLSearchParams({ q: 'storm', limit: '100', ...(after ? { after } : {}) })}`);
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((i: any) => `${i.position} ${i.rank}`));
      after = res.body.next;
    }
    expect(seen).toEqual(full.slice(0, 400).map((r) => `${r.partition}:${r.offset} ${r.rank}`));
  });
});
