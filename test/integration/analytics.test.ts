// The analytics projection against the real Kafka and Postgres: exact per-minute rollups of known
// captions, viewer minutes from leases (with the relay's repeats), encode durations per preset,
// the same rollups after a rebuild, and clear 400s for bad parameters.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newMeta } from '../../schemas/envelope.ts';
import type { AnyEvent } from '../../schemas/types.generated.ts';
import { countWords } from '../../projections/analytics/projection.ts';
import { ANALYTICS_TABLES } from '../../projections/analytics/tables.ts';
import { System, waitFor } from '../support/system.ts';

const MIN = 60_000;
/** A minute boundary, well before anything else in the log. */
const M0 = 1_699_999_980_000;
const at = (minute: number, seconds = 0) => M0 + minute * MIN + seconds * 1000;
const iso = (ms: number) => new Date(ms).toISOString();

let sys: System;
let key: string;
const admin = { authorization: 'Bearer test-admin-token' };

async function status(): Promise<any[]> {
  const r = await fetch(`${sys.api}/v1/admin/projections`, { headers: admin });
  return ((await r.json()) as any).projections;
}

/** Until the serving analytics version has applied everything in the log now. */
async function caughtUp(): Promise<void> {
  const ends = new Map<string, number>();
  for (const topic of ['captions', 'streams', 'encodes'] as const)
    for (const o of await sys.log.offsets(topic)) ends.set(`${topic}/${o.partition}`, o.high);
  await waitFor(
    'analytics to catch up',
    async () => {
      const a = (await status()).find((p) => p.name === 'analytics');
      const serving = a?.versions.find((v: any) => v.role === 'serving');
      return serving?.positions.every((p: any) => p.next >= (ends.get(`${p.topic}/${p.partition}`) ?? 0));
    },
    30_000,
    100,
  );
}

/** Appends events as the relay would: with their event-store stream and version, in order. */
type Relayed = AnyEvent & { key: string; stream: string; version: number };
async function relay(events: Relayed[]): Promise<void> {
  await sys.log.appendEncodedAll(
    events.map((e) => ({
      type: e.type,
      key: e.key,
      value: sys.log.codec.encode(e.type, e.data),
      meta: { ...newMeta(e.type, '/test/relay'), stream: e.stream, streamVersion: e.version },
    })),
  );
}

function viewer(userId: string) {
  let version = 1; // v1 is the UserIdIssued this test does not need
  const stream = `viewer-${userId}`;
  const ev = (event: AnyEvent): Relayed => ({ ...event, key: userId, stream, version: ++version });
  return {
    activate: (streamId: string, t: number, expiresAt: number) =>
      ev({ type: 'StreamActivated', data: { userId, streamId, at: t, expiresAt } }),
    heartbeat: (streamId: string, t: number, expiresAt: number) =>
      ev({ type: 'StreamHeartbeat', data: { userId, streamId, at: t, expiresAt } }),
    stop: (streamId: string, t: number, reason: 'stopped' | 'expired' = 'stopped') =>
      ev({ type: 'StreamDeactivated', data: { userId, streamId, reason, at: t } }),
  };
}

beforeAll(async () => {
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('projector'), sys.start('relay')]);
  key = await sys.stationKey('an-station');
}, 120_000);
afterAll(() => sys?.stop());

describe('words', () => {
  it('counts runs of letters and digits; an apostrophe or hyphen inside keeps one word', () => {
    expect(countWords('Good evening.')).toBe(2);
    expect(countWords("- Don't panic: it's well-known, 3 cats!")).toBe(6);
    expect(countWords('  ♪ ♪  ')).toBe(0);
    expect(countWords('Grüße aus Köln')).toBe(3);
  });
});

describe('captions per channel per minute', () => {
  it('counts each fragment once, in the minute it starts, with its words', async () => {
    const f = (seq: number, text: string, start: number) => ({ seq, text, start, end: start + 900 });
    const news = [
      f(1, 'Good evening.', at(0, 0)),
      f(2, 'Here is the news.', at(0, 20)),
      f(3, "Don't panic: it's well-known", at(1) - 1),
      f(4, '3 cats', at(1, 0)),
    ];
    expect((await sys.postJson('an.news', key, news)).body.accepted).toHaveLength(4);
    // A station's retry of seq 2 and 3, and a lower seq than its last: not counted again.
    expect((await sys.postJson('an.news', key, [news[1], news[2], f(1, 'old', at(2))])).status).toBe(200);
    // Another station on the same channel, and another channel.
    const other = await sys.stationKey('an-other');
    await sys.postJson('an.news', other, [f(1, 'One more', at(0, 30))]);
    await sys.postJson('an.sport', key, [f(1, 'Goal!', at(0, 5)), f(2, 'And again', at(2, 1))]);
    await caughtUp();

    const one = await sys.get(`/v1/analytics/captions?channel=an.news&from=${iso(at(0))}&to=${at(3)}`);
    expect(one.status).toBe(200);
    expect(one.body).toEqual({
      channel: 'an.news',
      from: iso(at(0)),
      to: iso(at(3)),
      total: { fragments: 5, words: 2 + 4 + 4 + 2 + 2 },
      minutes: [
        { minute: iso(at(0)), fragments: 4, words: 2 + 4 + 4 + 2 },
        { minute: iso(at(1)), fragments: 1, words: 2 },
        { minute: iso(at(2)), fragments: 0, words: 0 },
      ],
    });
    // Every channel together; a range not on minute boundaries covers the minutes it overlaps.
    const all = await sys.get(`/v1/analytics/captions?from=${at(0, 30)}&to=${at(2, 10)}`);
    expect(all.body.minutes).toEqual([
      { minute: iso(at(0)), fragments: 5, words: 13 },
      { minute: iso(at(1)), fragments: 1, words: 2 },
      { minute: iso(at(2)), fragments: 1, words: 2 },
    ]);
  });
});

describe('active viewers per minute', () => {
  it('counts a user once per minute in which any lease of theirs ran, ignoring the relay repeating events', async () => {
    const [u1, u2, u3, u4] = ['u1', 'u2', 'u3', 'u4'].map((u) => `an-${u}-${Date.now()}`) as [string, string, string, string];
    const a = viewer(u1);
    const b = viewer(u2);
    const c = viewer(u3);
    const d = viewer(u4);
    // u1: one lease over minutes 0-2, renewed twice, then expired at its expiry (2:40).
    const a1 = a.activate('s1', at(0, 10), at(1, 10));
    const a2 = a.heartbeat('s1', at(0, 50), at(1, 50));
    const a3 = a.heartbeat('s1', at(1, 40), at(2, 40));
    const a4 = a.stop('s1', at(2, 40), 'expired');
    // u2: a lease ending exactly at the start of minute 2 (not counted there), and one that ends
    // in the instant it starts (counted in its minute, 4).
    const b1 = b.activate('s1', at(2) - 1, at(3));
    const b2 = b.stop('s1', at(2));
    const b3 = b.activate('s2', at(4), at(5));
    const b4 = b.stop('s2', at(4));
    // u3: two streams at once in minute 0: one viewer.
    const c1 = c.activate('s1', at(0, 5), at(1, 5));
    const c2 = c.activate('s2', at(0, 6), at(1, 6));
    const c3 = c.stop('s1', at(0, 30));
    const c4 = c.stop('s2', at(0, 30));
    // u4: a lease never ended in the log: it counts until its expiry (5:30).
    const d1 = d.activate('s1', at(3), at(5, 30));
    // The relay repeats (at least once): earlier events again, after later ones. Applied again,
    // b1 would reopen u2's first lease and count u2 in minute 2.
    await relay([a1, c1, a2, a1, b1, c2, a3, b2, c3, c4, b1, a4, a2, b3, b4, b2, d1, d1, b1]);
    await caughtUp();

    const r = await sys.get(`/v1/analytics/viewers?from=${at(0)}&to=${at(7)}`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      from: iso(at(0)),
      to: iso(at(7)),
      peak: 2,
      minutes: [2, 2, 1, 1, 2, 1, 0].map((viewers, i) => ({ minute: iso(at(i)), viewers })),
    });
    // What is stored for u4 so far is its activation minute; the rest comes from its open lease.
    const stored = await sql<{ n: number }>`SELECT count(*)::int AS n FROM analytics_viewer_minutes WHERE user_id = ${u4}`.execute(sys.db);
    expect(stored.rows[0]!.n).toBe(1);
    // Its expiry recorded (as the sweeper would): the stored minutes now say the same.
    await relay([d.stop('s1', at(5, 30), 'expired')]);
    await caughtUp();
    const closed = await sql<{ n: number }>`SELECT count(*)::int AS n FROM analytics_viewer_minutes WHERE user_id = ${u4}`.execute(sys.db);
    expect(closed.rows[0]!.n).toBe(3);
    expect((await sys.get(`/v1/analytics/viewers?from=${at(0)}&to=${at(7)}`)).body).toEqual(r.body);
  });

  it('counts a viewer watching through the real API, event store and relay', async () => {
    const u = (await sys.get('/users/newId')).body.userId;
    const s = (await sys.get('/streams/newId')).body.streamId;
    const t0 = Date.now();
    expect((await fetch(`${sys.api}/streams/${s}/activate`, { method: 'PATCH', headers: { 'x-userid': u } })).status).toBe(200);
    expect((await fetch(`${sys.api}/streams/${s}/deactivate`, { method: 'PATCH', headers: { 'x-userid': u } })).status).toBe(200);
    const t1 = Date.now();
    const minutes = await waitFor('the viewer counted', async () => {
      const r = await sys.get(`/v1/analytics/viewers?from=${t0 - MIN}&to=${t1 + MIN}`);
      return r.body.peak === 1 && r.body.minutes;
    });
    const counted = minutes.filter((m: any) => m.viewers === 1).map((m: any) => Date.parse(m.minute));
    expect(counted.length).toBeGreaterThanOrEqual(1);
    expect(counted[0]).toBeGreaterThanOrEqual(Math.floor(t0 / MIN) * MIN);
    expect(counted.at(-1)).toBeLessThanOrEqual(t1);
    expect(minutes.every((m: any) => m.viewers <= 1)).toBe(true);
  });
});

describe('encode durations per preset', () => {
  it('times each completed encode from its first step (and from its request), per preset', async () => {
    const T = at(10);
    const job = (jobId: string) => {
      let version = 0;
      const stream = `encode-${jobId}`;
      const ev = (event: AnyEvent): Relayed => ({ ...event, key: jobId, stream, version: ++version });
      const ids = { jobId, userId: 'an-owner' };
      const options = (preset: string) => ({ preset, qp: 22, container: 'mp4', logo: false, width: null, height: null, fps: null });
      return {
        request: (preset: string, attempt: number, t: number) =>
          ev({
            type: 'EncodeRequested',
            data: {
              ...ids,
              uploadId: 'up',
              sha256: 'ab'.repeat(32),
              filename: 'a.mp4',
              raw: false,
              options: options(preset),
              webhookUrl: null,
              attempt,
              at: t,
            },
          }),
        start: (step: string, attempt: number, t: number) =>
          ev({ type: 'EncodeStepStarted', data: { ...ids, step, worker: 'w1', attempt, at: t } }),
        progress: (step: string, t: number) => ev({ type: 'EncodeProgressed', data: { ...ids, step, percent: 50, at: t } }),
        fail: (step: string, t: number) => ev({ type: 'EncodeFailed', data: { ...ids, step, reason: 'boom', stderrTail: '', at: t } }),
        complete: (t: number) =>
          ev({ type: 'EncodeCompleted', data: { ...ids, outputSha256: 'cd'.repeat(32), size: 10, container: 'mp4', at: t } }),
      };
    };
    const j1 = job('an-j1');
    const j2 = job('an-j2');
    const j3 = job('an-j3');
    const j4 = job('an-j4');
    const j5 = job('an-j5');
    // Versions are numbered as the events are made: make them in log order.
    const j1r = j1.request('fast', 1, T);
    const j1s = [j1.start('probe', 1, T + 1000), j1.progress('probe', T + 1500), j1.start('encode', 1, T + 2000)];
    const j1c = j1.complete(T + 5000);
    const j2r = j2.request('fast', 1, T);
    const events = [
      j1r,
      ...j1s,
      j1c,
      // A failed attempt, then a second one that completes.
      j2r,
      j2.start('probe', 1, T + 500),
      j2.fail('probe', T + 800),
      j2.request('fast', 2, T + 10_000),
      j2.start('probe', 2, T + 11_000),
      j2.complete(T + 17_000),
      j3.request('slow', 1, T),
      j3.start('probe', 1, T + 1000),
      j3.complete(T + 31_000),
      j4.request('slow', 1, T), // still queued
      // Completed at once with another encode's output: reused, not timed.
      j5.request('fast', 1, T + 40_000),
      j5.complete(T + 40_001),
      // Relay repeats: applied again, j2's first request would reset its second attempt.
      j1c,
      j2r,
      j1r,
    ];
    await relay(events);
    await caughtUp();

    const r = await sys.get('/v1/analytics/encodes');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      from: null,
      to: null,
      presets: [
        {
          preset: 'fast',
          count: 2,
          reused: 1,
          failed: 1,
          p50Ms: 5000,
          avgMs: 5000,
          maxMs: 6000,
          total: { p50Ms: 6000, avgMs: 6000, maxMs: 7000 },
        },
        {
          preset: 'slow',
          count: 1,
          reused: 0,
          failed: 0,
          p50Ms: 30_000,
          avgMs: 30_000,
          maxMs: 30_000,
          total: { p50Ms: 31_000, avgMs: 31_000, maxMs: 31_000 },
        },
      ],
    });
    const slow = await sys.get(`/v1/analytics/encodes?preset=slow&from=${T + 20_000}`);
    expect(slow.body.presets).toEqual([expect.objectContaining({ preset: 'slow', count: 1 })]);
  });
});

describe('bad parameters', () => {
  it.each([
    ['/v1/analytics/captions?from=yesterday', 'from'],
    ['/v1/analytics/captions?to=2023-13-45', 'to'],
    [`/v1/analytics/captions?from=${at(5)}&to=${at(1)}`, 'to'],
    ['/v1/analytics/captions?channel=Not%20A%20Channel', 'channel'],
    ['/v1/analytics/captions?chanel=an.news', 'chanel'],
    [`/v1/analytics/viewers?from=${at(0)}&to=${at(0) + 32 * 24 * 60 * MIN}`, 'to'],
    [`/v1/analytics/viewers?from=${at(0)}&to=${at(0)}`, 'to'],
    ['/v1/analytics/encodes?preset=Fast!', 'preset'],
    ['/v1/analytics/encodes?from=soon', 'from'],
  ])('%s is a 400 naming %s', async (path, field) => {
    const r = await sys.get(path);
    expect(r.status).toBe(400);
    expect(r.body.field).toBe(field);
    expect(r.body.error).toMatch(new RegExp(`^${field}: `));
  });
});

describe('rebuild', () => {
  it('a rebuilt analytics version has the same rollups as the one it replaces', async () => {
    const queries = [
      `/v1/analytics/captions?from=${at(0)}&to=${at(3)}`,
      `/v1/analytics/captions?channel=an.sport&from=${at(0)}&to=${at(3)}`,
      `/v1/analytics/viewers?from=${at(0)}&to=${at(7)}`,
      '/v1/analytics/encodes',
    ];
    await caughtUp();
    const before = await Promise.all(queries.map((q) => sys.get(q)));
    const started = await fetch(`${sys.api}/v1/admin/projections/analytics/rebuild`, { method: 'POST', headers: admin });
    expect(started.status).toBe(202);
    expect(await started.json()).toEqual({ name: 'analytics', building: 2 });
    await waitFor('analytics v2 swapped in', async () => (await status()).find((p) => p.name === 'analytics')?.current === 2, 60_000, 200);

    for (const table of ANALYTICS_TABLES) {
      for (const [x, y] of [
        ['analytics_v1', 'analytics_v2'],
        ['analytics_v2', 'analytics_v1'],
      ]) {
        const { rows } = await sql`SELECT * FROM ${sql.id(x!, table)} EXCEPT SELECT * FROM ${sql.id(y!, table)}`.execute(sys.db);
        expect(rows, `${table} in ${x} but not in ${y}`).toEqual([]);
      }
    }
    const after = await Promise.all(queries.map((q) => sys.get(q)));
    expect(after).toEqual(before);
  }, 90_000);
});
