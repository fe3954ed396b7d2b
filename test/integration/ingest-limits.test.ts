// What one station's requests may cost the API, and what it is told when a stream ends early:
// memory bounded while it does not read its answers, stalled streams ended, streams per station
// capped, a removed key refused by every api process within a second, and every line read
// answered even when the body is cut short.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeStation } from '../../infra/stations.ts';
import { System, fragment, metricValue, waitFor } from '../support/system.ts';

let sys: System;
let second: System;
let key: string;

beforeAll(async () => {
  sys = await System.create({ INGEST_IDLE_TIMEOUT_MS: '1500', INGEST_MAX_STREAMS_PER_STATION: '3' });
  second = await System.sharing(sys);
  await Promise.all([sys.start('api'), second.start('api')]);
  key = await sys.stationKey('limits-station');
});
afterAll(async () => {
  await second?.stop();
  await sys?.stop();
});

/** Resident memory of a process, in bytes. */
const rss = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;

/** A request whose answer nobody reads: the socket is paused from the start. */
function unreadRequest(port: number, path: string, headers: Record<string, string>, body: Buffer): net.Socket {
  const socket = net.connect(port, '127.0.0.1');
  socket.pause();
  const head = Object.entries({ ...headers, 'content-length': String(body.length) })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.write(`POST ${path} HTTP/1.1\r\nhost: x\r\n${head}\r\n`);
  socket.write(body);
  socket.on('error', () => undefined);
  return socket;
}

/**
 * RSS growth of the api held while `during` runs: the median of samples every 20 ms over its second
 * half, against the RSS before. What an unread request holds stays for the whole window; a spike
 * of the process's own (a compile on a background thread, a collection) on a loaded machine does
 * not, and a peak would count it.
 */
async function heldGrowth(pid: number, during: () => Promise<void>): Promise<number> {
  const base = rss(pid);
  const samples: number[] = [];
  const timer = setInterval(() => samples.push(rss(pid)), 20);
  try {
    await during();
  } finally {
    clearInterval(timer);
  }
  const held = samples.slice(Math.floor(samples.length / 2)).sort((a, b) => a - b);
  return held[Math.floor(held.length / 2)]! - base;
}

/** The api's V8 young generation as committed now (both half-spaces), from its /metrics. */
async function youngGeneration(port: number): Promise<number> {
  const bytes = await metricValue(port, 'nodejs_heap_space_size_total_bytes', 'space="new"');
  if (bytes === undefined) throw new Error('no nodejs_heap_space_size_total_bytes{space="new"} on /metrics');
  return bytes;
}

describe('memory per ingest request', () => {
  it.each([
    ['500,000 tiny lines (1 MB), answers not read', () => Buffer.from('1\n'.repeat(500_000))],
    ['100,000 bad lines, answers not read', () => Buffer.from('{"seq":"x","text":1,"start":"s","end":[]}\n'.repeat(100_000))],
  ])(
    '%s: at most 16 MB over the baseline',
    async (_name, body) => {
      const pid = sys.procs.get('api')!.pid!;
      const payload = body();
      // Warm up with the same body, its answers read, until the garbage collector has grown the
      // young generation as far as this allocation rate takes it (up to 128 MB with the apps' node
      // flags; it grew by 64 MB within the window once): what is measured is then what an unread
      // request holds, not that growth or the first JIT of the paths.
      await sys.postNdjson('warm', key, Buffer.from(`${JSON.stringify(fragment(1))}\n`));
      let young = await youngGeneration(sys.apiPort);
      for (let i = 0; i < 8; i++) {
        await sys.postNdjson('warm', key, payload);
        const now = await youngGeneration(sys.apiPort);
        if (now === young && i > 0) break;
        young = now;
      }
      // Up to three windows, each with a request of its own, and the smallest growth counts: what an
      // unread request holds is there in every window, while the collector paging its young
      // generation in (up to 128 MB, committed before the pages are touched) shows in some and not
      // others: fresh-clone runs saw +64 MB of young generation inside one window, and +44 MB of RSS
      // in another with none.
      let growth = Infinity;
      for (let attempt = 1; attempt <= 3 && growth > 16 * 2 ** 20; attempt++) {
        const sockets: net.Socket[] = [];
        const held = await heldGrowth(pid, async () => {
          sockets.push(
            unreadRequest(
              sys.apiPort,
              '/v1/channels/mem/captions',
              { 'content-type': 'application/x-ndjson', authorization: `Bearer ${key}` },
              payload,
            ),
          );
          await new Promise((r) => setTimeout(r, 3000));
        });
        for (const s of sockets) s.destroy();
        const now = await youngGeneration(sys.apiPort);
        const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
        console.log(`rss growth: ${mb(held)} MB (young generation ${mb(young)} MB, +${mb(now - young)} in the window)`);
        young = now;
        growth = Math.min(growth, held);
      }
      expect(growth).toBeLessThanOrEqual(16 * 2 ** 20);
    },
    60_000,
  );

  it('a station that does not read its answers is not read either: the body stops being consumed', async () => {
    // 200,000 good fragments: their answers (~8 MB) are more than the sockets' buffers hold.
    const body = Buffer.from(Array.from({ length: 200_000 }, (_, i) => JSON.stringify(fragment(i + 1))).join('\n'));
    const before = await sys.captionsInLog();
    const socket = unreadRequest(
      sys.apiPort,
      '/v1/channels/unread/captions',
      { 'content-type': 'application/x-ndjson', authorization: `Bearer ${key}` },
      body,
    );
    // Appends run while the answers fit the buffers, then stop; wait until the log stays put.
    let last = -1;
    const stalled = await waitFor(
      'ingest to stop',
      async () => {
        const n = (await sys.captionsInLog()) - before;
        const settled = n === last && n > 0;
        last = n;
        return settled && n;
      },
      30_000,
      1000,
    );
    socket.destroy();
    console.log(`read ${stalled} of 200000 fragments before waiting for the station to read`);
    expect(stalled).toBeLessThan(150_000);
  }, 60_000);
});

describe('a stream that ends early', () => {
  it('stalled: ended after INGEST_IDLE_TIMEOUT_MS with a last line saying why, its lines answered', async () => {
    const req = http.request(`${sys.api}/v1/channels/idle.stream/captions`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${key}` },
    });
    const response = await new Promise<http.IncomingMessage>((resolve) => (req.once('response', resolve), req.flushHeaders()));
    let text = '';
    response.on('data', (d: Buffer) => (text += d));
    req.on('error', () => undefined);
    req.write(`${JSON.stringify(fragment(1))}\n`);
    const t0 = Date.now();
    await new Promise((resolve) => response.once('end', resolve));
    const lines = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ seq: 1, position: expect.any(String) });
    expect(lines.at(-1)).toEqual({ error: expect.stringMatching(/^body: nothing received for 1.5 s/), field: 'body' });
    expect(Date.now() - t0).toBeGreaterThan(1000);
  });

  it('cut short (the station half-closes before its declared length): every line read is answered, then why', async () => {
    const before = await sys.captionsInLog();
    const socket = net.connect(sys.apiPort, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d));
    const closed = new Promise((r) => socket.once('close', r));
    const body = [1, 2, 3].map((s) => JSON.stringify(fragment(s, `cut ${s}`))).join('\n') + '\n';
    socket.write(
      'POST /v1/channels/cut.short/captions HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\n' +
        `authorization: Bearer ${key}\r\ncontent-length: ${body.length + 1000}\r\n\r\n${body}`,
    );
    await new Promise((r) => setTimeout(r, 300));
    socket.end(); // half-close: the station sends no more but still reads
    await closed;
    const acks = text
      .split('\r\n\r\n')
      .slice(1)
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
    expect(acks.filter((a) => a.position).map((a) => a.seq)).toEqual([1, 2, 3]);
    expect(acks.at(-1)).toMatchObject({ field: 'body', error: expect.stringMatching(/before its declared length/) });
    expect((await sys.captionsInLog()) - before).toBe(3);
  });

  it('a media type in capitals is still NDJSON', async () => {
    const r = await fetch(`${sys.api}/v1/channels/caps/captions`, {
      method: 'POST',
      headers: { 'content-type': 'APPLICATION/X-NDJSON', authorization: `Bearer ${key}` },
      body: `${JSON.stringify(fragment(1))}\n${JSON.stringify(fragment(2))}\n`,
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    expect(
      (await r.text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).seq),
    ).toEqual([1, 2]);
  });
});

describe('streams per station', () => {
  it('past INGEST_MAX_STREAMS_PER_STATION open streams, another is 429 with Retry-After; one closing makes room', async () => {
    const own = await sys.stationKey('capped-station');
    const open = await Promise.all(
      [1, 2, 3].map(async () => {
        const req = http.request(`${sys.api}/v1/channels/capped/captions`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${own}` },
        });
        req.on('error', () => undefined);
        const res = await new Promise<http.IncomingMessage>((resolve) => (req.once('response', resolve), req.flushHeaders()));
        res.resume();
        return { req, res };
      }),
    );
    expect(open.map((o) => o.res.statusCode)).toEqual([200, 200, 200]);
    const fourth = await fetch(`${sys.api}/v1/channels/capped/captions`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${own}` },
      body: `${JSON.stringify(fragment(1))}\n`,
    });
    expect(fourth.status).toBe(429);
    expect(fourth.headers.get('retry-after')).toBe('5');
    expect(await fourth.json()).toMatchObject({ field: 'authorization', error: expect.stringMatching(/3 ingest streams open/) });
    // Another station is not affected.
    expect((await sys.postNdjson('capped', key, `${JSON.stringify(fragment(1))}\n`)).status).toBe(200);
    open[0]!.req.end();
    await new Promise((r) => open[0]!.res.once('end', r));
    await waitFor(
      'room for a stream',
      async () => (await sys.postNdjson('capped', own, `${JSON.stringify(fragment(2))}\n`)).status === 200,
    );
    for (const o of open.slice(1)) o.req.destroy();
  });
});

describe('a removed station key', () => {
  it('is refused by every api process within a second, and its open stream is ended', async () => {
    const doomed = await sys.stationKey('doomed-station');
    // Both processes have it cached.
    for (const s of [sys, second]) expect((await s.postJson('doomed', doomed, fragment(1))).status).toBe(200);
    const req = http.request(`${second.api}/v1/channels/doomed/captions`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${doomed}` },
    });
    req.on('error', () => undefined);
    const res = await new Promise<http.IncomingMessage>((resolve) => (req.once('response', resolve), req.flushHeaders()));
    let text = '';
    res.on('data', (d: Buffer) => (text += d));
    const ended = new Promise((r) => res.once('end', r));

    const t0 = Date.now();
    await removeStation(sys.db, 'doomed-station');
    const refusedAfter = await Promise.all(
      [sys, second].map((s) =>
        waitFor(
          'refusal',
          async () => ((await s.postJson('doomed', doomed, fragment(2))).status === 401 ? Date.now() - t0 : undefined),
          5000,
          20,
        ),
      ),
    );
    await ended;
    console.log(`removed key refused after ${refusedAfter.join(' and ')} ms`);
    for (const ms of refusedAfter) expect(ms).toBeLessThan(1000);
    expect(JSON.parse(text.trim().split('\n').at(-1)!)).toEqual({
      error: 'authorization: the station key was removed',
      field: 'authorization',
    });
  });
});
