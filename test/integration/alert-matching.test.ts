// An alert matches a caption exactly when /v1/search would find it: the matcher evaluates the
// same tsquery against the same tsvector as Postgres does. Proved against Postgres itself on
// generated captions and queries (words with stems and stop words, phrases, -not, or, languages).
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertIndex, concatenate } from '../../domain/alerts/matcher.ts';
import { matches, parseTsQuery, parseTsVector } from '../../domain/alerts/tsquery.ts';
import { System } from '../support/system.ts';

let sys: System;
beforeAll(async () => {
  sys = await System.create();
});
afterAll(() => sys?.stop());

const WORDS = [
  'the',
  'prime',
  'minister',
  'ministers',
  'said',
  'says',
  'saying',
  'run',
  'running',
  'runs',
  'ran',
  'news',
  'is',
  'a',
  'of',
  'élection',
  'élections',
  'wahl',
  'Wahlen',
  'gobierno',
  'weather',
  'rain',
  'raining',
  'storm',
  'well-known',
  "don't",
  '2024',
  'e-mail',
  'co-op',
  'to',
  'be',
  'or',
  'not',
  'and',
  'AND',
  'Or',
  'paris',
  'Paris',
  'café',
  'naïve',
  'über',
  'x',
  'i',
];
const word = fc.constantFrom(...WORDS);
const text = fc
  .array(fc.oneof({ weight: 6, arbitrary: word }, fc.constantFrom('.', ',', '!', '?', '—', '"', '(', ')', '-')), {
    minLength: 1,
    maxLength: 14,
  })
  .map((parts) => parts.join(' '));
const lang = fc.constantFrom(null, 'en', 'fr', 'de', 'es', 'pt-BR', 'xx');
const term = fc.oneof(
  { weight: 4, arbitrary: word },
  { weight: 2, arbitrary: fc.array(word, { minLength: 2, maxLength: 4 }).map((w) => `"${w.join(' ')}"`) },
  { weight: 1, arbitrary: word.map((w) => `-${w}`) },
  { weight: 1, arbitrary: fc.array(word, { minLength: 2, maxLength: 3 }).map((w) => `-"${w.join(' ')}"`) },
  { weight: 1, arbitrary: fc.constant('or') },
);
const query = fc.array(term, { minLength: 1, maxLength: 5 }).map((t) => t.join(' '));

interface Case {
  text: string;
  lang: string | null;
  q: string;
  qlang: string | null;
}

/** Postgres' answers for many cases in one statement: the vector, the query, and whether it matches. */
async function postgres(cases: Case[]): Promise<{ v: string; q: string; m: boolean }[]> {
  const { rows } = await sql<{ v: string; q: string; m: boolean; i: number }>`
    SELECT public.castlog_search_vector(c.lang, c.text)::text AS v, public.castlog_search_query(c.qlang, c.q)::text AS q,
           public.castlog_search_vector(c.lang, c.text) @@ public.castlog_search_query(c.qlang, c.q) AS m, c.i
    FROM unnest(${cases.map((c) => c.text)}::text[], ${cases.map((c) => c.lang)}::text[], ${cases.map((c) => c.q)}::text[],
                ${cases.map((c) => c.qlang)}::text[]) WITH ORDINALITY AS c(text, lang, q, qlang, i)
    ORDER BY c.i`.execute(sys.db);
  return rows;
}

describe('the matcher against Postgres', () => {
  it('answers as Postgres does for generated captions and queries', async () => {
    const cases = fc.sample(fc.record({ text, lang, q: query, qlang: fc.constantFrom(null, 'en', 'fr') }), { numRuns: 6000, seed: 1 });
    let matched = 0;
    const wrong: string[] = [];
    for (let i = 0; i < cases.length; i += 1000) {
      const batch = cases.slice(i, i + 1000);
      const answers = await postgres(batch);
      answers.forEach((a, j) => {
        const q = parseTsQuery(a.q);
        const ours = q !== undefined && matches(q, parseTsVector(a.v));
        if (ours !== a.m) wrong.push(`${JSON.stringify(batch[j])}: postgres ${a.m}, matcher ${ours} (${a.q} @@ ${a.v})`);
        if (a.m) matched++;
      });
    }
    console.log(`${cases.length} cases, ${matched} matches, ${wrong.length} disagreements`);
    expect(matched).toBeGreaterThan(300); // the generator makes matches, not only misses
    expect(wrong.slice(0, 10)).toEqual([]);
  }, 120_000);

  it('evaluates any tsquery shape as Postgres does: nested phrases, distances, negation inside phrases', async () => {
    const lexeme = fc.constantFrom('a', 'b', 'c', 'd');
    const { tree } = fc.letrec<{ tree: string }>((tie) => ({
      tree: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        lexeme.map((l) => `'${l}'`),
        tie('tree').map((t) => `!(${t})`),
        fc
          .tuple(tie('tree'), fc.constantFrom('&', '|', '<->', '<2>', '<0>', '<3>'), tie('tree'))
          .map(([l, op, r]) => `(${l}) ${op} (${r})`),
      ),
    }));
    const vector = fc
      .array(fc.tuple(lexeme, fc.integer({ min: 1, max: 8 })), { minLength: 0, maxLength: 8 })
      .map((pairs) => pairs.map(([l, p]) => `${l}:${p}`).join(' '));
    const cases = fc.sample(fc.tuple(tree, vector), { numRuns: 4000, seed: 4 });
    const { rows } = await sql<{ q: string; v: string; m: boolean }>`
      SELECT c.q::tsquery::text AS q, c.v::tsvector::text AS v, c.v::tsvector @@ c.q::tsquery AS m
      FROM unnest(${cases.map((c) => c[0])}::text[], ${cases.map((c) => c[1])}::text[]) WITH ORDINALITY AS c(q, v, i) ORDER BY c.i`.execute(
      sys.db,
    );
    const wrong = rows.filter((r) => {
      const q = parseTsQuery(r.q);
      return (q !== undefined && matches(q, parseTsVector(r.v))) !== r.m;
    });
    console.log(`${rows.length} tsquery shapes, ${rows.filter((r) => r.m).length} matches, ${wrong.length} disagreements`);
    expect(wrong.slice(0, 10)).toEqual([]);
  }, 60_000);

  it('an alert index finds exactly the alerts a naive loop finds', async () => {
    const alerts = fc.sample(fc.record({ q: query, qlang: fc.constantFrom(null, 'en') }), { numRuns: 400, seed: 2 });
    const captions = fc.sample(fc.record({ text, lang }), { numRuns: 300, seed: 3 });
    const qs = await postgres(alerts.map((a) => ({ text: 'x', lang: null, q: a.q, qlang: a.qlang })));
    const vs = await postgres(captions.map((c) => ({ text: c.text, lang: c.lang, q: 'x', qlang: null })));
    const index = new AlertIndex();
    qs.forEach((a, i) => index.add({ alertId: `a${i}`, userId: 'u', tsquery: a.q, channels: i % 7 === 0 ? ['other'] : [], createdAt: 0 }));
    let found = 0;
    for (const v of vs) {
      const caption = { channel: 'ch', receivedAt: 1, doc: parseTsVector(v.v) };
      const indexed = index
        .match([caption])
        .map((m) => m.alertId)
        .sort();
      expect(indexed).toEqual(index.matchNaive(caption).sort());
      found += indexed.length;
    }
    expect(found).toBeGreaterThan(50);
  }, 60_000);
});

describe('a phrase split across rollup captions', () => {
  it('matches the caption it ends in, as Postgres matches the captions concatenated, and only that one', async () => {
    const parts = ['THE PRIME', 'MINISTER SAID', 'THE WEATHER'];
    const vs = await postgres(parts.map((p) => ({ text: p, lang: 'en', q: '"prime minister"', qlang: 'en' })));
    const docs = vs.map((v) => parseTsVector(v.v));
    const index = new AlertIndex();
    index.add({ alertId: 'pm', userId: 'u', tsquery: vs[0]!.q, channels: [], createdAt: 0 });
    const caption = (i: number) => ({ channel: 'bbc1', receivedAt: 1, doc: docs[i]! });
    expect(index.match([caption(0)])).toEqual([]);
    expect(index.match([caption(0), caption(1)])).toEqual([{ alertId: 'pm', across: true }]);
    expect(index.match([caption(0), caption(1), caption(2)])).toEqual([]); // it ended in the one before
    // Postgres agrees that the concatenated captions hold the phrase.
    const { rows } = await sql<{
      m: boolean;
    }>`SELECT (public.castlog_search_vector('en', ${parts[0]}) || public.castlog_search_vector('en', ${parts[1]}))
                                                @@ ${vs[0]!.q}::tsquery AS m`.execute(sys.db);
    expect(rows[0]!.m).toBe(true);
    const joined = concatenate([docs[0]!, docs[1]!]);
    expect(matches(parseTsQuery(vs[0]!.q)!, joined.doc)).toBe(true);
  });

  it('words that are not a phrase do not match across captions', async () => {
    const vs = await postgres(['PRIME', 'MINISTER'].map((p) => ({ text: p, lang: 'en', q: 'prime minister', qlang: 'en' })));
    const index = new AlertIndex();
    index.add({ alertId: 'and', userId: 'u', tsquery: vs[0]!.q, channels: [], createdAt: 0 });
    expect(index.match(vs.map((v) => ({ channel: 'c', receivedAt: 1, doc: parseTsVector(v.v) })))).toEqual([]);
  });
});
