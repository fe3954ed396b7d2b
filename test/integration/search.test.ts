// Full-text search over the caption read model: ranking, phrases, stemming, filters, pagination,
// highlighted snippets, and bad queries (each a 400 naming the field, never a 500).
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { System, fragment, waitFor } from '../support/system.ts';

let sys: System;
const A = 'search.a';
const B = 'search.b';

const TEXTS_A: [string, string | null][] = [
  ['Heavy rain moving in from the west tonight', 'en'], // 1: the phrase
  ['We are moving house in the spring, rain or shine', 'en'], // 2: the same words apart
  ['He runs every morning before work', 'en'], // 3: stemming
  ['Les élections municipales auront lieu dimanche', 'fr'], // 4: French
  ['Tom & Jerry say 2 < 3, the quizmaster agrees', null], // 5: escaping, no language
  ['Nothing to see here', 'en'], // 6
];
const PAGED = 23;

const search = (params: Record<string, string | number>) =>
  sys.get(`/v1/search?${new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]))}`);

beforeAll(async () => {
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('projector')]);
  const key = await sys.stationKey('search-station');
  const a = TEXTS_A.map(([text, lang], i) => fragment(i + 1, text, lang ? { lang } : {}));
  // B: many hits for one word, with different densities so ranks differ and tie.
  const b = Array.from({ length: PAGED }, (_, i) =>
    fragment(i + 1, `${'forecast '.repeat(1 + (i % 4))}for the coast, bulletin ${i + 1}`, { lang: 'en' }),
  );
  expect((await sys.postJson(A, key, a)).status).toBe(200);
  expect((await sys.postJson(B, key, b)).status).toBe(200);
  await waitFor('rows', async () => (await sys.fragments(A)).length === TEXTS_A.length && (await sys.fragments(B)).length === PAGED);
});
afterAll(() => sys?.stop());

describe('GET /v1/search', () => {
  it('ranks a fragment with the exact phrase above one with the words apart; quotes ask for the phrase', async () => {
    const loose = await search({ q: 'rain moving in', channel: A });
    expect(loose.status).toBe(200);
    expect(loose.body.items.map((i: any) => i.seq)).toEqual([1, 2]);
    expect(loose.body.items[0].rank).toBeGreaterThan(loose.body.items[1].rank);

    const phrase = await search({ q: '"rain moving in"' });
    expect(phrase.body.items.map((i: any) => [i.channel, i.seq])).toEqual([[A, 1]]);
    // An unbalanced quote is read as a phrase running to the end, not an error.
    const open = await search({ q: '"rain moving' });
    expect(open.status).toBe(200);
    expect(open.body.items.map((i: any) => i.seq)).toEqual([1]);
  });

  it('stems in the fragment language: "running" finds "runs", with or without lang', async () => {
    const en = await search({ q: 'running', lang: 'en' });
    expect(en.body.items.map((i: any) => i.seq)).toEqual([3]);
    const any = await search({ q: 'running' });
    expect(any.body.items.map((i: any) => i.seq)).toEqual([3]);
    const fr = await search({ q: 'élection', lang: 'fr-FR' });
    expect(fr.body.items.map((i: any) => i.seq)).toEqual([4]);
    // A word of a caption without a language is found as written.
    expect((await search({ q: 'quizmaster' })).body.items.map((i: any) => i.seq)).toEqual([5]);
    // Excluding a word.
    expect((await search({ q: 'rain -spring', channel: A })).body.items.map((i: any) => i.seq)).toEqual([1]);
  });

  it('answers each hit with its channel, position, station, time and an escaped, highlighted snippet', async () => {
    const r = await search({ q: 'runs' });
    const stored = await sys.db
      .selectFrom('caption_fragments')
      .select(['partition', 'offset'])
      .where('channel', '=', A)
      .where('seq', '=', 3)
      .executeTakeFirstOrThrow();
    expect(r.body).toEqual({
      q: 'runs',
      next: null,
      items: [
        {
          channel: A,
          position: `${stored.partition}:${stored.offset}`,
          station: 'search-station',
          seq: 3,
          lang: 'en',
          start: fragment(3).start,
          end: fragment(3).end,
          text: TEXTS_A[2]![0],
          rank: expect.any(Number),
          snippet: 'He <mark>runs</mark> every morning before work',
        },
      ],
    });
    const escaped = await search({ q: 'jerry quizmaster' });
    expect(escaped.body.items[0].snippet).toBe('Tom &amp; <mark>Jerry</mark> say 2 &lt; 3, the <mark>quizmaster</mark> agrees');
  });

  it('filters by channel and by time (ms or ISO)', async () => {
    expect((await search({ q: 'coast' })).body.items.every((i: any) => i.channel === B)).toBe(true);
    expect((await search({ q: 'coast', channel: A })).body.items).toEqual([]);
    const from = fragment(5).start;
    const to = fragment(9).start;
    const ms = await search({ q: 'forecast', channel: B, from, to, limit: 100 });
    expect(ms.body.items.map((i: any) => i.seq).sort((x: number, y: number) => x - y)).toEqual([5, 6, 7, 8]);
    const iso = await search({ q: 'forecast', channel: B, from: new Date(from).toISOString(), to: new Date(to).toISOString(), limit: 100 });
    expect(iso.body.items).toEqual(ms.body.items);
  });

  it('pages through every hit exactly once, best first, with an opaque cursor', async () => {
    const seen: number[] = [];
    const ranks: number[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const r = await search({ q: 'forecast', limit: 5, ...(after ? { after } : {}) });
      expect(r.status).toBe(200);
      expect(r.body.items.length).toBeLessThanOrEqual(5);
      seen.push(...r.body.items.map((i: any) => i.seq));
      ranks.push(...r.body.items.map((i: any) => i.rank));
      after = r.body.next;
      pages++;
    } while (after);
    expect(pages).toBe(Math.ceil(PAGED / 5));
    expect([...seen].sort((x, y) => x - y)).toEqual(Array.from({ length: PAGED }, (_, i) => i + 1));
    expect(ranks).toEqual([...ranks].sort((x, y) => y - x));
    // The densest fragments (four times "forecast") come first.
    expect(seen.slice(0, 5).every((s) => s % 4 === 0)).toBe(true);
    // The same search in one page gives the same order.
    const all = await search({ q: 'forecast', limit: 100 });
    expect(all.body.items.map((i: any) => i.seq)).toEqual(seen);
  });

  it('rejects bad queries with a 400 that names the field, never a 500, and changes nothing', async () => {
    const before = await sql<{ n: number }>`SELECT count(*)::int AS n FROM caption_fragments`.execute(sys.db);
    const firstPage = await search({ q: 'forecast', limit: 2 });
    const cases: [string, string][] = [
      ['', 'q'],
      ['q=', 'q'],
      ['q=%20%20', 'q'],
      ['q=%26%26%26%7C!%3A*', 'q'], // &&&|!:* : no words
      [`q=${'a'.repeat(257)}`, 'q'],
      ['q=rain%00', 'q'],
      ['q=a&q=b', 'q'],
      ['q=rain&limit=0', 'limit'],
      ['q=rain&limit=101', 'limit'],
      ['q=rain&limit=ten', 'limit'],
      ['q=rain&from=soon', 'from'],
      ['q=rain&to=2024-13-45T99:00', 'to'],
      ['q=rain&from=2000&to=1000', 'to'],
      ['q=rain&after=nope', 'after'],
      ['q=rain&after=%E2%9C%93', 'after'],
      [`q=rain&after=${firstPage.body.next}`, 'after'], // a cursor of another search
      ['q=rain&lang=!!', 'lang'],
      ['q=rain&channel=BAD', 'channel'],
      ['q=rain&colour=blue', 'colour'],
    ];
    for (const [query, field] of cases) {
      const r = await sys.get(`/v1/search?${query}`);
      expect(r.status, query).toBe(400);
      expect(r.body.field, query).toBe(field);
      expect(r.body.error, query).toMatch(new RegExp(`^${field}: `));
    }
    // Raw operators and broken encodings: whatever they parse into, an answer, never a 500.
    for (const raw of [
      'q=&&&|!:*',
      'q=%ZZ',
      'q=%C3%28',
      'q=rain:*',
      'q=(((',
      'q=!',
      'q="',
      "q='",
      'q=%F0%9F%98%80',
      'q=-',
      'q=or',
      'q=a%20<->%20b',
    ]) {
      const r = await fetch(`${sys.api}/v1/search?${raw}`);
      expect(r.status, raw).toBeLessThan(500);
      expect([200, 400], raw).toContain(r.status);
      const body = (await r.json()) as any;
      if (r.status === 400) expect(body.field, raw).toEqual(expect.any(String));
    }
    const afterwards = await sql<{ n: number }>`SELECT count(*)::int AS n FROM caption_fragments`.execute(sys.db);
    expect(afterwards.rows[0]!.n).toBe(before.rows[0]!.n);
  });
});
