// Capture stations posting fragments: acknowledgements, positions, and every kind of bad input.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { System, fragment, waitFor } from '../support/system.ts';

let sys: System;
let key: string;

beforeAll(async () => {
  sys = await System.create();
  await sys.start('api');
  await sys.start('projector');
  key = await sys.stationKey('ingest-station');
});
afterAll(() => sys?.stop());

describe('NDJSON ingest', () => {
  it('acknowledges every good line with its log position, in order, and stores it once', async () => {
    const body = [1, 2, 3].map((s) => JSON.stringify(fragment(s, `line ${s}`, { lang: 'en', mode: 'rollup' }))).join('\n') + '\n';
    const r = await sys.postNdjson('news.one', key, body);
    expect(r.status).toBe(200);
    expect(r.lines.map((l) => l.seq)).toEqual([1, 2, 3]);
    const offsets = r.lines.map((l) => Number(l.position.split(':')[1]));
    expect(offsets[1]).toBe(offsets[0]! + 1);
    expect(offsets[2]).toBe(offsets[1]! + 1);
    const rows = await waitFor('rows', async () =>
      (await sys.fragments('news.one')).length === 3 ? sys.fragments('news.one') : undefined,
    );
    expect(rows.map((x) => x.text)).toEqual(['line 1', 'line 2', 'line 3']);
  });

  it('answers each line as soon as it is durable, while the request stays open', async () => {
    // A station holds one request open and writes a line at a time, as ccextractor's client does.
    const req = http.request(`${sys.api}/v1/channels/slow.stream/captions`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${key}` },
    });
    req.flushHeaders();
    // The stream is accepted (status and headers) before the station has sent anything.
    const response = await new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve));
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines: any[] = [];
    response.on('data', (d: Buffer) =>
      lines.push(
        ...d
          .toString()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l)),
      ),
    );
    req.write(JSON.stringify(fragment(1)) + '\n');
    await waitFor('first ack', () => lines.length === 1);
    expect(lines[0]).toMatchObject({ seq: 1, position: expect.stringMatching(/^\d+:\d+$/) });
    req.write(JSON.stringify(fragment(2)) + '\n');
    await waitFor('second ack', () => lines.length === 2);
    expect(lines[1]).toMatchObject({ seq: 2 });
    req.end();
    await new Promise((resolve) => response.once('end', resolve));
  });

  it('skips bad lines with an error naming the line and goes on', async () => {
    const before = await sys.captionsInLog();
    const lines = [
      JSON.stringify(fragment(10)), // 1 ok
      '{"seq": 11, "text": "unterminated"', // 2 malformed JSON
      JSON.stringify(fragment(12, 'x'.repeat(2001))), // 3 oversize text
      Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('latin1'), // 4 invalid UTF-8 (sent as raw bytes below)
      JSON.stringify({ ...fragment(13), seq: 'thirteen' }), // 5 wrong type
      JSON.stringify({ ...fragment(14), end: 1 }), // 6 end before start
      JSON.stringify(fragment(15, 'é'.repeat(2000), { mode: 'popon' })), // 7 ok: 2000 characters, 4000 bytes
      JSON.stringify({ ...fragment(16), mode: 'scroll' }), // 8 bad mode
      JSON.stringify({ ...fragment(17), lang: 'not a tag' }), // 9 bad lang
      '[1,2]', // 10 not an object
    ];
    const r = await sys.postNdjson(
      'bad.lines',
      key,
      Buffer.from(lines.join('\n') + '\n', 'latin1').toString('latin1') === ''
        ? ''
        : Buffer.concat(
            lines.map((l, i) => Buffer.concat([i === 3 ? Buffer.from(l, 'latin1') : Buffer.from(l, 'utf8'), Buffer.from('\n')])),
          ),
    );
    expect(r.status).toBe(200);
    const byLine = Object.fromEntries(r.lines.filter((l) => l.line).map((l) => [l.line, l.error]));
    expect(byLine[2]).toMatch(/malformed JSON/);
    expect(byLine[3]).toMatch(/^text: .*2000 characters/);
    expect(byLine[4]).toMatch(/UTF-8/);
    expect(byLine[5]).toMatch(/^seq: /);
    expect(byLine[6]).toMatch(/^end: /);
    expect(byLine[8]).toMatch(/^mode: /);
    expect(byLine[9]).toMatch(/^lang: /);
    expect(byLine[10]).toMatch(/object/);
    expect(r.lines.filter((l) => l.position).map((l) => l.seq)).toEqual([10, 15]);
    expect((await sys.captionsInLog()) - before).toBe(2);
  });
});

describe('JSON ingest', () => {
  it('accepts one fragment or an array and answers accepted and rejected', async () => {
    const one = await sys.postJson('json.one', key, fragment(1));
    expect(one.status).toBe(200);
    expect(one.body.accepted).toEqual([{ seq: 1, position: expect.stringMatching(/^\d+:\d+$/) }]);
    const many = await sys.postJson('json.one', key, [fragment(2), { seq: -1 }, fragment(3)]);
    expect(many.status).toBe(200);
    expect(many.body.accepted.map((a: any) => a.seq)).toEqual([2, 3]);
    expect(many.body.rejected).toEqual([{ line: 2, error: expect.stringMatching(/^seq: /) }]);
  });

  it('rejects a body that is not JSON, or not UTF-8, with 400 and writes nothing', async () => {
    const before = await sys.captionsInLog();
    const bad = await sys.postJson('json.bad', key, '{"seq": 1,');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/malformed JSON/);
    const r = await fetch(`${sys.api}/v1/channels/json.bad/captions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
    });
    expect(r.status).toBe(400);
    expect((await r.json()).error).toMatch(/UTF-8/);
    const allBad = await sys.postJson('json.bad', key, [{ seq: 1 }]);
    expect(allBad.status).toBe(400);
    expect((await sys.captionsInLog()) - before).toBe(0);
  });
});

describe('who may write where', () => {
  it('refuses a bad channel id with 400 naming the field', async () => {
    for (const channel of ['Upper', '-dash-first', 'a'.repeat(65), 'sp%20ace', '%C3%A9t%C3%A9']) {
      const r = await sys.postJson(channel, key, fragment(1));
      expect(r.status, channel).toBe(400);
      expect(r.body).toMatchObject({ field: 'channel', error: expect.stringMatching(/channel/) });
    }
  });

  it('refuses a missing or wrong key with 401 and writes nothing', async () => {
    const before = await sys.captionsInLog();
    const none = await sys.postJson('keys', undefined, fragment(1));
    expect(none.status).toBe(401);
    expect(none.body.field).toBe('authorization');
    const wrong = await sys.postJson('keys', 'cst_not-a-real-key', fragment(1));
    expect(wrong.status).toBe(401);
    const nd = await fetch(`${sys.api}/v1/channels/keys/captions`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', authorization: 'Bearer nope' },
      body: JSON.stringify(fragment(1)) + '\n',
    });
    expect(nd.status).toBe(401);
    expect((await sys.captionsInLog()) - before).toBe(0);
  });

  it('drops a station retry: the same (channel, station, seq) is stored once', async () => {
    await sys.postJson('retry.ch', key, [fragment(1, 'first'), fragment(2, 'second')]);
    await sys.postJson('retry.ch', key, [fragment(2, 'second'), fragment(3, 'third')]);
    // One channel is one partition, projected in log order: once seq 3 is in, so is any row the
    // repeated seq 2 before it was going to make.
    const rows = await waitFor('seq 3', async () => {
      const r = await sys.fragments('retry.ch');
      return r.some((x) => x.seq === 3) && r;
    });
    expect(rows.map((x) => x.seq)).toEqual([1, 2, 3]);
    expect(rows.map((x) => x.text)).toEqual(['first', 'second', 'third']);
    const list = await sys.get('/v1/channels');
    expect(list.body.channels.find((c: any) => c.id === 'retry.ch')).toMatchObject({ fragmentCount: 3 });
    // seq increases per station: one that goes back is a repeat for history as for live viewers.
    await sys.postJson('retry.ch', key, [fragment(2, 'second again, changed'), fragment(4, 'fourth')]);
    const after = await waitFor('seq 4', async () => {
      const r = await sys.fragments('retry.ch');
      return r.some((x) => x.seq === 4) && r;
    });
    expect(after.map((x) => x.text)).toEqual(['first', 'second', 'third', 'fourth']);
  });
});

describe('Kafka unreachable', () => {
  it('answers 503 within a second and writes nothing', async () => {
    const other = await System.create({ KAFKA_BROKERS: '127.0.0.1:1' });
    try {
      await other.start('api');
      const k = await other.stationKey();
      const t0 = performance.now();
      const r = await other.postJson('down', k, fragment(1));
      const ms = performance.now() - t0;
      expect(r.status).toBe(503);
      expect(r.body.error).toMatch(/Kafka/);
      expect(ms).toBeLessThan(1000);
      const ready = await other.get('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ kafka: false, postgres: true });
      expect(await other.captionsInLog()).toBe(0);
    } finally {
      await other.stop();
    }
  });
});
