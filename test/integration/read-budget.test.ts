// Expensive reads (search, export, analytics) have a budget of their own: a query too complex is
// a 400, a statement past READ_TIMEOUT_MS is stopped by Postgres, and a flood of searches waits in
// its own line (past it: 503 "busy" with Retry-After) while ingest, decisions and health go on.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { System, fragment, waitFor } from '../support/system.ts';

let sys: System;
let key: string;

beforeAll(async () => {
  sys = await System.create({ READ_CONCURRENCY: '2', READ_TIMEOUT_MS: '1500' });
  await Promise.all([sys.start('api'), sys.start('projector'), sys.start('relay')]);
  key = await sys.stationKey('budget');
  // 150,000 captions, each with the word "news": a search for it ranks every one.
  await sys.postJson('budget', key, fragment(1)); // the projection exists
  await sql`INSERT INTO caption_fragments (channel, partition, "offset", station, seq, text, start_ms, end_ms, mode, lang, received_at_ms)
            SELECT 'bulk' || (i % 50), 100, i, 's', i, 'the evening news number ' || i || ' with weather and sport',
                   1700000000000 + i, 1700000000500 + i, NULL, 'en', 0
            FROM generate_series(1, 150000) AS i`.execute(sys.db);
}, 180_000);
afterAll(() => sys?.stop());

const search = (q: string, extra = '') => fetch(`${sys.api}/v1/search?q=${encodeURIComponent(q)}${extra}`);

describe('queries that cannot be answered in reasonable time', () => {
  it.each([
    ['-a repeated 64 times', '-a '.repeat(64), /too complex/],
    ['256 dashes', '-'.repeat(256), /too complex/],
    ['100 dashes', '-'.repeat(100), /too complex/],
    ['only negations', '-news -weather', /not negated/],
    ['33 words', Array.from({ length: 33 }, (_, i) => `w${i}`).join(' '), /at most 32 words/],
  ])('%s: 400 naming q', async (_name, q, problem) => {
    const r = await search(q);
    expect(r.status).toBe(400);
    expect(await r.json()).toMatchObject({ field: 'q', error: expect.stringMatching(problem) });
  });

  it.each([
    ['a rank past a real', ['1e999', 0, 0]],
    ['a rank below a real', ['1e-999', 0, 0]],
    ['a 41-digit rank', ['1'.repeat(41), 0, 0]],
    ['a partition past 2^31', ['0.1', 2 ** 31, 0]],
    ['a partition the topic does not have', ['0.1', 6, 0]],
    ['an offset past a long', ['0.1', 0, 2 ** 63]],
  ])('a cursor with %s: 400 naming after', async (_name, parts) => {
    const { fingerprint } = await import('../../apps/api/search.ts');
    const after = Buffer.from(JSON.stringify([...parts, fingerprint(['weather', null, null, null, null])])).toString('base64url');
    const r = await search('weather', `&after=${after}`);
    expect(r.status).toBe(400);
    expect((await r.json()).field).toBe('after');
  });

  it('a statement past READ_TIMEOUT_MS is stopped by Postgres: 503 naming q, and the next search is answered', async () => {
    const slow = await fetch(
      `${sys.api}/v1/search?q=${encodeURIComponent('"number with" or news or weather or sport or evening')}&limit=100`,
    );
    if (slow.status === 200) return; // this machine ranked 150,000 rows within the budget; the flood below still counts
    expect(slow.status).toBe(503);
    expect(await slow.json()).toMatchObject({ field: 'q', error: expect.stringMatching(/took too long/) });
    expect((await search('weather', '&channel=bulk7')).status).toBe(200);
  });
});

describe('a flood of expensive reads', () => {
  it('waits in its own line, is told "busy" past it, and never slows ingest, decisions or health', async () => {
    const userId = (await (await fetch(`${sys.api}/users/newId`)).json()).userId as string;
    const streamId = (await (await fetch(`${sys.api}/streams/newId`)).json()).streamId as string;
    const timed = async (f: () => Promise<Response>) => {
      const t0 = performance.now();
      const r = await f();
      await r.arrayBuffer();
      return { status: r.status, ms: performance.now() - t0 };
    };
    let busyAnswers = 0;
    const flood = Array.from({ length: 80 }, () =>
      search('news', '&limit=100').then(async (r) => {
        const answer = { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.json() };
        if (answer.status === 503 && /^busy/.test(answer.body.error)) busyAnswers++;
        return answer;
      }),
    );
    // "Busy" is answered at once, and only past a full line: the line is full now.
    await waitFor('the first "busy" answer', () => busyAnswers > 0, 30_000, 10);
    const others = [];
    for (let i = 0; i < 5; i++) {
      others.push(await timed(() => fetch(`${sys.api}/healthz`)));
      others.push(
        await timed(() =>
          fetch(`${sys.api}/v1/channels/budget/captions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
            body: JSON.stringify(fragment(100 + i)),
          }),
        ),
      );
      others.push(
        await timed(() =>
          fetch(`${sys.api}/streams/${streamId}/${i % 2 ? 'deactivate' : 'activate'}`, {
            method: 'PATCH',
            headers: { 'x-userid': userId },
          }),
        ),
      );
    }
    const answers = await Promise.all(flood);
    const busy = answers.filter((a) => a.status === 503 && /^busy/.test(a.body.error));
    const answered = answers.filter((a) => a.status === 200).length;
    const overBudget = answers.filter((a) => a.status === 503 && !/^busy/.test(a.body.error)).length;
    const othersMs = others.map((o) => o.ms.toFixed(0)).join(', ');
    console.log(`flood: ${answered} answered, ${busy.length} busy, ${overBudget} over budget; others took ${othersMs} ms`);
    for (const a of answers) expect([200, 503], JSON.stringify(a.body)).toContain(a.status);
    expect(busy.length).toBeGreaterThan(0);
    for (const b of busy) expect(b.retryAfter).toBe('1');
    for (const o of others) expect(o.status).toBe(200);
    // Answered while every search connection was taken: they never waited behind the searches.
    for (const o of others) expect(o.ms).toBeLessThan(1000);
  }, 120_000);
});
