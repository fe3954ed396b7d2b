// The edges of the live protocol against the real fanout: which pages may connect (Origin), a
// `since` beyond the end of the log, replay speeds a timer cannot wait for, and frames that are too
// big, binary or broken, each answered as docs/live-protocol.md says.
import { connect as tcpConnect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { partitionFor } from '../../schemas/partitioner.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { LiveClient, System, fragment, waitFor } from '../support/system.ts';

let sys: System;
let key: string;
const clients: LiveClient[] = [];
const connect = async (url = sys.live, headers: Record<string, string> = {}) => {
  const c = await LiveClient.connect(url, headers);
  clients.push(c);
  return c;
};
const errors = (c: LiveClient) => c.messages.filter((m) => m.type === 'error');

beforeAll(async () => {
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('projector'), sys.start('fanout')]);
  key = await sys.stationKey('edge-station');
});
afterAll(async () => {
  for (const c of clients) c.close();
  await sys?.stop();
});

/** Tries a WebSocket upgrade: 101 when the socket opened, else the refusal's status and JSON body. */
function upgrade(url: string, headers: Record<string, string>): Promise<{ status: number; body?: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101 });
    });
    ws.once('unexpected-response', (req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode!, body: JSON.parse(text) });
        req.destroy();
      });
    });
    ws.on('error', reject); // after an answer, a no-op
  });
}

describe('which pages may connect (Origin)', () => {
  it('lets through clients that send no Origin, and pages of the API by the host they reach the fanout at', async () => {
    expect(await upgrade(sys.live, {})).toEqual({ status: 101 });
    expect(await upgrade(sys.live, { origin: `http://127.0.0.1:${sys.apiPort}` })).toEqual({ status: 101 });
    expect(await upgrade(sys.live, { origin: `https://127.0.0.1:${sys.apiPort}` })).toEqual({ status: 101 });
    // A page opened at http://localhost:<api port> connects to ws://localhost:<fanout port>.
    expect(await upgrade(sys.live, { host: `localhost:${sys.fanoutPort}`, origin: `http://localhost:${sys.apiPort}` })).toEqual({
      status: 101,
    });
  });

  it.each([
    ['another site', () => 'https://evil.example'],
    ['the right host on the fanout’s port', () => `http://127.0.0.1:${sys.fanoutPort}`],
    ['the API’s port on another host', () => `http://localhost:${sys.apiPort}`],
    ['an opaque origin (sandboxed frame, file://)', () => 'null'],
  ])('refuses %s with 403 naming origin, and no socket opens', async (_name, origin) => {
    expect(await upgrade(sys.live, { origin: origin() })).toEqual({
      status: 403,
      body: { error: expect.stringMatching(/^origin: /), field: 'origin' },
    });
  });

  it('ALLOWED_ORIGINS replaces the default, and * allows any page', async () => {
    const other = await System.sharing(sys);
    try {
      await other.start('fanout', { ALLOWED_ORIGINS: 'https://app.example, http://127.0.0.1:9999' });
      expect(await upgrade(other.live, { origin: 'https://app.example' })).toEqual({ status: 101 });
      expect(await upgrade(other.live, { origin: 'http://127.0.0.1:9999' })).toEqual({ status: 101 });
      expect(await upgrade(other.live, { origin: `http://127.0.0.1:${other.apiPort}` })).toMatchObject({
        status: 403,
        body: { field: 'origin' },
      });
      await other.kill('fanout', 'SIGTERM');
      await other.start('fanout', { ALLOWED_ORIGINS: '*' });
      expect(await upgrade(other.live, { origin: 'https://anyone.example' })).toEqual({ status: 101 });
    } finally {
      await other.stop();
    }
  }, 120_000);
});

describe('a since beyond the end of the log', () => {
  const channel = 'edge.since';
  const partition = partitionFor(channel, TOPICS.captions.partitions);

  it('is refused with invalid_position naming since, and the last position received still resumes', async () => {
    const c = await connect();
    c.subscribe(channel);
    await c.waitFor('subscribed', channel);
    await sys.postJson(channel, key, [fragment(1), fragment(2)]);
    const [, last] = await c.waitForCaptions(2, channel);

    const end = (await sys.log.offsets('captions')).find((o) => o.partition === partition)!.high;
    const resumer = await connect();
    for (const [i, offset] of [end, end + 1_000_000].entries()) {
      resumer.subscribe(channel, `${partition}:${offset}`);
      await waitFor('the refusal', () => errors(resumer).length === i + 1);
      expect(errors(resumer)[i]).toEqual({
        type: 'error',
        code: 'invalid_position',
        field: 'since',
        channel,
        message: expect.stringMatching(new RegExp(`^since: ${partition}:${offset} is beyond the end of the log`)),
      });
    }
    expect(resumer.messages.filter((m) => m.type === 'subscribed')).toEqual([]);

    resumer.subscribe(channel, last.position);
    expect(await resumer.waitFor('subscribed', channel)).toEqual({ type: 'subscribed', channel, position: last.position, recovered: true });
    await sys.postJson(channel, key, [fragment(3)]);
    expect((await resumer.waitForCaptions(1, channel)).map((m) => m.seq)).toEqual([3]);
  });

  it('is not a position the log has just been given: one the ingest API acknowledged is served at once', async () => {
    const fresh = 'edge.fresh';
    for (let i = 1; i <= 5; i++) {
      const r = await sys.postJson(fresh, key, [fragment(i)]);
      const c = await connect();
      c.subscribe(fresh, r.body.accepted[0].position);
      expect(await c.waitFor('subscribed', fresh)).toMatchObject({ position: r.body.accepted[0].position, recovered: true });
    }
    const last = clients.at(-1)!;
    await sys.postJson(fresh, key, [fragment(6)]);
    expect((await last.waitForCaptions(1, fresh)).map((m) => m.seq)).toEqual([6]);
  });
});

describe('replay speed', () => {
  const T0 = Date.UTC(2026, 0, 5, 20, 0, 0);
  const channel = 'edge.replay';

  beforeAll(async () => {
    await sys.postJson(
      channel,
      key,
      [0, 1, 2].map((i) => ({ seq: i + 1, text: `line ${i + 1}`, start: T0 + i * 1000, end: T0 + i * 1000 + 900 })),
    );
    await waitFor('the read model', async () => (await sys.fragments(channel)).length === 3);
  });

  it.each([
    ['below the minimum', { from: T0, to: T0 + 3000, speed: 0.001 }, /^speed: must be a number from 0\.01 to 1000/],
    ['so small a timer would fire at once', { from: T0, to: T0 + 3000, speed: 1e-9 }, /^speed: must be a number from 0\.01/],
    [
      'making a month last over 7 days',
      { from: T0, to: T0 + 30 * 86_400_000, speed: 1 },
      /^speed: at 1x this range takes 30 days; a replay may take at most 7 days/,
    ],
    ['at its slowest over a day', { from: T0, to: T0 + 86_400_000, speed: 0.01 }, /^speed: at 0\.01x this range takes 100 days/],
    ['not a number', { from: T0, to: T0 + 3000, speed: '10' }, /^speed: /],
  ])('refuses a speed %s with bad_request naming speed, and keeps the socket', async (_name, range, message) => {
    const c = await connect();
    c.ws.send(JSON.stringify({ op: 'replay', channel, ...range }));
    const e = await c.waitFor('error');
    expect(e).toEqual({ type: 'error', code: 'bad_request', field: 'speed', message: expect.stringMatching(message) });
    expect(c.messages.filter((m) => m.type === 'replay_started')).toEqual([]);
    c.ws.send(JSON.stringify({ op: 'replay', channel, from: T0, to: T0 + 3000, speed: 1000 }));
    expect(await c.waitFor('replay_end')).toMatchObject({ sent: 3, stopped: false });
  });

  it('names id for a replay id already running, and op for a replay past 8 at once', async () => {
    const c = await connect();
    const slow = (id: string) => c.ws.send(JSON.stringify({ op: 'replay', channel, from: T0, to: T0 + 3000, speed: 0.01, id }));
    for (let i = 1; i <= 8; i++) slow(`r${i}`);
    await waitFor('8 replays', () => c.messages.filter((m) => m.type === 'replay_started').length === 8);
    slow('r1');
    expect(await c.waitFor('error')).toEqual({
      type: 'error',
      code: 'bad_request',
      field: 'id',
      channel,
      message: 'id: a replay with id r1 is already running',
    });
    slow('r9');
    await waitFor('two errors', () => errors(c).length === 2);
    expect(errors(c)[1]).toEqual({
      type: 'error',
      code: 'too_many_replays',
      field: 'op',
      channel,
      message: expect.stringMatching(/^op: .*at most 8/),
    });
  });

  it('paces the slowest allowed replay at its speed rather than sending it at once', async () => {
    // 3 s at 0.01x: a caption at 0 s, the next 100 s later.
    const c = await connect();
    c.ws.send(JSON.stringify({ op: 'replay', channel, from: T0, to: T0 + 3000, speed: 0.01, id: 'slowest' }));
    expect(await c.waitFor('replay_started')).toMatchObject({ replay: 'slowest', speed: 0.01 });
    await c.waitForCaptions(1, channel);
    c.ws.send(JSON.stringify({ op: 'stop_replay', id: 'slowest' }));
    expect(await c.waitFor('replay_end')).toEqual({ type: 'replay_end', replay: 'slowest', channel, sent: 1, stopped: true });
  });
});

/** A raw TCP connection that has completed the WebSocket handshake; `received` is what came after. */
async function rawSocket(): Promise<{ socket: Socket; received: () => Buffer; closed: Promise<void> }> {
  const socket = tcpConnect(sys.fanoutPort, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  let data = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => (data = Buffer.concat([data, d])));
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.on('error', () => undefined); // a reset is one way of being closed
  socket.write(
    `GET /v1/live HTTP/1.1\r\nHost: 127.0.0.1:${sys.fanoutPort}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await waitFor('the handshake', () => data.includes('\r\n\r\n'), 5000, 5);
  expect(data.toString().split('\r\n')[0]).toBe('HTTP/1.1 101 Switching Protocols');
  const head = data.indexOf('\r\n\r\n') + 4;
  return { socket, received: () => data.subarray(head), closed };
}

/** A client frame (masked, as RFC 6455 requires), with its first byte's flags and opcode given. */
function frame(first: number, payload: Buffer): Buffer {
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  return Buffer.concat([Buffer.from([first, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]);
}

describe('frames', () => {
  const channel = 'edge.frames';
  let seq = 0;
  /** A subscribe message padded to exactly `bytes` bytes. */
  const subscribeOf = (bytes: number) => {
    const base = JSON.stringify({ op: 'subscribe', channel, pad: '' });
    return JSON.stringify({ op: 'subscribe', channel, pad: 'x'.repeat(bytes - base.length) });
  };

  it('reads a message of exactly 16 KiB, and closes the connection with 1009 for one byte more', async () => {
    const c = await connect();
    const fits = subscribeOf(16 * 1024);
    expect(Buffer.byteLength(fits)).toBe(16384);
    c.ws.send(fits);
    await c.waitFor('subscribed', channel);
    c.ws.send(subscribeOf(16 * 1024 + 1));
    await waitFor('close', () => c.closed);
    expect(c.closed).toEqual({ code: 1009, reason: 'message too big: at most 16384 bytes' });
  });

  it('counts a message split into frames as a whole', async () => {
    const c = await connect();
    const text = subscribeOf(20 * 1024);
    c.ws.send(text.slice(0, 10_000), { fin: false });
    c.ws.send(text.slice(10_000), { fin: true });
    await waitFor('close', () => c.closed);
    expect(c.closed!.code).toBe(1009);
  });

  it('cuts a message over 1 MiB without a close frame (1006), and only that connection', async () => {
    const bystander = await connect();
    bystander.subscribe(channel);
    await bystander.waitFor('subscribed', channel);
    const c = await connect();
    c.ws.on('error', () => undefined);
    c.ws.send('x'.repeat(1024 * 1024 + 1));
    await waitFor('close', () => c.closed);
    expect(c.closed!.code).toBe(1006);
    await sys.postJson(channel, key, [fragment(++seq)]);
    await bystander.waitForCaptions(1, channel);
  });

  it('answers a binary frame with an error naming the frame, and keeps the socket', async () => {
    const c = await connect();
    c.ws.send(Buffer.from(JSON.stringify({ op: 'subscribe', channel })), { binary: true });
    expect(await c.waitFor('error')).toEqual({
      type: 'error',
      code: 'bad_request',
      field: 'frame',
      message: expect.stringMatching(/^frame: must be a text frame/),
    });
    c.subscribe(channel);
    await c.waitFor('subscribed', channel);
  });

  it.each([
    ['a reserved bit set', frame(0x80 | 0x40 | 0x1, Buffer.from('{}'))],
    ['a reserved opcode', frame(0x80 | 0x3, Buffer.from('{}'))],
    ['a continuation with nothing to continue', frame(0x80 | 0x0, Buffer.from('{}'))],
    ['a fragmented ping', frame(0x9, Buffer.from('hi'))],
    ['a text frame that is not UTF-8', frame(0x80 | 0x1, Buffer.from([0x22, 0xff, 0xfe, 0x22]))],
  ])('cuts the connection for %s (no close frame: 1006 at the client), and nothing else', async (_name, bytes) => {
    const bystander = await connect();
    bystander.subscribe(channel);
    await bystander.waitFor('subscribed', channel);
    const raw = await rawSocket();
    raw.socket.write(bytes);
    await raw.closed;
    expect(raw.received()).toEqual(Buffer.alloc(0));
    const r = await sys.postJson(channel, key, [fragment(++seq)]);
    expect(r.status).toBe(200);
    await bystander.waitForCaptions(1, channel);
    expect(sys.procs.get('fanout')!.exitCode).toBeNull();
  });
});
