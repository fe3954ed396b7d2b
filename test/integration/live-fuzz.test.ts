// Generated bad frames thrown at every op of the live protocol, against the real fanout process.
// Every bad frame gets an error frame naming the member at fault (or, for frames too big or broken
// at the WebSocket level, the documented close), the process never exits, and a viewer on another
// connection gets every caption posted meanwhile, in order.
import { connect as tcpConnect } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { isChannelId } from '../../domain/captions/channel.ts';
import { parsePosition } from '../../domain/position.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { LiveClient, System, fragment, waitFor } from '../support/system.ts';

let sys: System;
let key: string;
/** The last seq the station posted to the watched channel. */
let posted = 0;
const WATCHED = 'fuzz.watch';
const partitionOf = (channel: string) => partitionFor(channel, TOPICS.captions.partitions);
/** A channel on a partition nothing is posted to, so every offset of it is beyond the end of the log. */
const QUIET = Array.from({ length: 100 }, (_, i) => `fuzz.quiet-${i}`).find((c) => partitionOf(c) !== partitionOf(WATCHED))!;
const T0 = Date.UTC(2026, 0, 5, 20, 0, 0);
const MAX_FRAME = 16 * 1024;
const HARD_LIMIT = 1024 * 1024;

beforeAll(async () => {
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('projector'), sys.start('fanout')]);
  key = await sys.stationKey('fuzz-station');
});
afterAll(() => sys?.stop());

/** What the fanout must answer a frame with. */
type Expected =
  | { error: string; codes: string[] } // an error frame naming this field, with one of these codes
  | { answer: 'subscribed' | 'unsubscribed' } // a valid request after all
  | { close: number }; // the connection closed with this code (1006: cut without a close frame)

interface Case {
  frame: string | Uint8Array;
  binary?: boolean;
  expected: Expected;
}

// ---- values that are wrong for one member ------------------------------------------------------

const notString = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }),
);
/** Strings of every kind: odd code points, lone surrogates, long ones. */
const anyString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('\ud800', '\udfff', '\u0000', '\u202e', '\ufeff', ':', '-', '0', '9'), maxLength: 40 }),
  fc.string({ minLength: 200, maxLength: 3000 }),
);
const badChannel = fc.oneof(
  notString,
  anyString.filter((s) => !isChannelId(s)),
);
const badTime = fc.oneof(
  fc.constantFrom(null, true, false, '', -1, 1.5, 2 ** 53, [], {}),
  fc.integer({ max: -1 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isSafeInteger(d) || d < 0),
  anyString.filter((s) => s === '' || Number.isNaN(Date.parse(s))),
);
const badSpeed = fc.oneof(
  fc.double({ max: 0.01, maxExcluded: true, noNaN: true, noDefaultInfinity: true }),
  fc.double({ min: 1000, minExcluded: true, noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(null, true, '10', [], {}),
  anyString,
);
const badReplayId = fc.oneof(
  notString.filter((v) => v !== undefined),
  fc.constant(''),
  fc.string({ minLength: 65, maxLength: 500 }),
);
const badOp = fc.oneof(notString, anyString).filter((op) => !['subscribe', 'unsubscribe', 'replay', 'stop_replay'].includes(op as string));

/** A since that must be refused on the quiet channel (whose partition has no record): wrong type,
 *  malformed, another channel's partition, or any offset of its own (the log has none). */
const badSince = fc
  .oneof(
    notString.filter((v) => v !== null),
    anyString,
    fc.tuple(fc.integer({ min: 0, max: 200 }), fc.oneof(fc.integer({ min: -3, max: 1_000 }), fc.maxSafeNat())).map(([p, o]) => `${p}:${o}`),
  )
  .filter((s) => {
    const p = typeof s === 'string' ? parsePosition(s) : undefined;
    return !(p && p.partition === partitionOf(QUIET) && p.offset === -1); // "before the first" is fine
  });

const message = (m: Record<string, unknown>) => JSON.stringify(m);
const replay = { op: 'replay', channel: QUIET, from: T0, to: T0 + 1000, speed: 1000 };

/** The one member a frame gets wrong, and what that must be answered with. */
const opCases: fc.Arbitrary<Case>[] = [
  badOp.map((op) => ({ frame: message({ op, channel: QUIET }), expected: { error: 'op', codes: ['bad_request'] } })),
  badChannel.map((channel) => ({
    frame: message({ op: 'subscribe', channel }),
    expected: { error: 'channel', codes: typeof channel === 'string' ? ['invalid_channel', 'forbidden'] : ['bad_request'] },
  })),
  notString.map((channel) => ({ frame: message({ op: 'unsubscribe', channel }), expected: { error: 'channel', codes: ['bad_request'] } })),
  badSince.map((since) => ({
    frame: message({ op: 'subscribe', channel: QUIET, since }),
    expected: { error: 'since', codes: typeof since === 'string' ? ['invalid_position'] : ['bad_request'] },
  })),
  badChannel.map((channel) => ({
    frame: message({ ...replay, channel }),
    expected: { error: 'channel', codes: typeof channel === 'string' ? ['invalid_channel'] : ['bad_request'] },
  })),
  badTime.map((from) => ({ frame: message({ ...replay, from }), expected: { error: 'from', codes: ['bad_request'] } })),
  badTime.map((to) => ({ frame: message({ ...replay, to }), expected: { error: 'to', codes: ['bad_request'] } })),
  fc.integer({ min: 0, max: T0 }).map((to) => ({ frame: message({ ...replay, to }), expected: { error: 'to', codes: ['bad_request'] } })),
  badSpeed.map((speed) => ({ frame: message({ ...replay, speed }), expected: { error: 'speed', codes: ['bad_request'] } })),
  // A speed in range, over a range it would take more than a week to play.
  fc.tuple(fc.double({ min: 0.01, max: 1000, noNaN: true }), fc.integer({ min: 1, max: 1e12 })).map(([speed, extra]) => ({
    frame: message({ ...replay, speed, to: T0 + Math.ceil(7 * 86_400_000 * speed) + extra }),
    expected: { error: 'speed', codes: ['bad_request'] },
  })),
  badReplayId.map((id) => ({ frame: message({ ...replay, id }), expected: { error: 'id', codes: ['bad_request'] } })),
  fc
    .oneof(notString, anyString)
    .map((id) => ({ frame: message({ op: 'stop_replay', id }), expected: { error: 'id', codes: ['bad_request'] } })),
];

/** What the protocol must make of any text: not JSON or not an object is the frame's fault. */
function expectationOfText(text: string): Expected {
  if (Buffer.byteLength(text) > MAX_FRAME) return { close: Buffer.byteLength(text) > HARD_LIMIT ? 1006 : 1009 };
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return { error: 'frame', codes: ['bad_request'] };
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return { error: 'frame', codes: ['bad_request'] };
  const { op, channel } = m as Record<string, unknown>;
  if (!['subscribe', 'unsubscribe', 'replay', 'stop_replay'].includes(op as string)) return { error: 'op', codes: ['bad_request'] };
  if (op === 'unsubscribe' && typeof channel === 'string') return { answer: 'unsubscribed' };
  throw new Error(`the generator made a request this oracle does not judge: ${text.slice(0, 200)}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

const frameCases: fc.Arbitrary<Case>[] = [
  // Random JSON and random text.
  fc
    .jsonValue({ maxDepth: 3 })
    .map((v) => JSON.stringify(v))
    .map((frame) => ({ frame, expected: expectationOfText(frame) })),
  anyString.map((frame) => ({ frame, expected: expectationOfText(frame) })),
  fc
    .constantFrom('', ' ', '{', '}', '[]', 'null', '{"op":', '{"op":"subscribe"', '{"__proto__":{"op":"subscribe"}}', '{"constructor":{}}')
    .map((frame) => ({ frame, expected: expectationOfText(frame) })),
  // Random bytes as a binary frame, and as a text frame (cut when they are not UTF-8).
  fc.uint8Array({ maxLength: 300 }).map((frame) => ({ frame, binary: true, expected: { error: 'frame', codes: ['bad_request'] } })),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => {
    let text: string | undefined;
    try {
      text = utf8.decode(bytes);
    } catch {
      text = undefined;
    }
    return { frame: bytes, expected: text === undefined ? { close: 1006 } : expectationOfText(text) };
  }),
  // Too big: a proper 1009 up to the hard limit, cut beyond it.
  fc.integer({ min: MAX_FRAME + 1, max: 64 * 1024 }).map((n) => ({ frame: 'x'.repeat(n), expected: { close: 1009 } })),
  fc
    .constantFrom(HARD_LIMIT, HARD_LIMIT + 1)
    .map((n) => ({ frame: `"${'y'.repeat(n - 2)}"`, expected: { close: n > HARD_LIMIT ? 1006 : 1009 } })),
];

/** One connection that sends a frame and waits for its one answer (or the close). */
class Prober {
  private client!: LiveClient;
  async send(c: Case): Promise<any> {
    if (!this.client || this.client.closed) {
      this.client = await LiveClient.connect(sys.live);
      this.client.ws.on('error', () => undefined); // a cut connection is an expected answer here
    }
    const c0 = this.client;
    const before = c0.messages.length;
    c0.ws.send(c.frame, { binary: c.binary ?? false });
    return waitFor(
      'an answer',
      () => (c0.messages.length > before ? c0.messages[before] : c0.closed ? { closed: c0.closed } : undefined),
      10_000,
      2,
    );
  }
  close(): void {
    this.client?.close();
  }
}

function judge(c: Case, got: any): void {
  const e = c.expected;
  if ('close' in e) {
    expect(got, 'the connection closes').toMatchObject({ closed: { code: e.close } });
  } else if ('answer' in e) {
    expect(got.type).toBe(e.answer);
  } else {
    expect(got).toMatchObject({ type: 'error', field: e.error });
    expect(e.codes).toContain(got.code);
    expect(got.message).toMatch(new RegExp(`^${e.error}: .+`));
  }
}

it('answers every bad frame as documented, never dies, and a viewer elsewhere misses nothing', async () => {
  // A viewer on its own connection, and a station posting to it throughout.
  const viewer = await LiveClient.connect(sys.live);
  viewer.subscribe(WATCHED);
  await viewer.waitFor('subscribed', WATCHED);
  let posting = true;
  const station = (async () => {
    while (posting) {
      const r = await sys.postJson(WATCHED, key, [fragment(posted + 1)]);
      expect(r.status).toBe(200);
      posted++;
      await new Promise((res) => setTimeout(res, 20));
    }
  })();

  const fanout = sys.procs.get('fanout')!;
  const prober = new Prober();
  const counts = { errors: 0, closes: 0, answers: 0 };
  try {
    await fc.assert(
      fc.asyncProperty(fc.oneof(...opCases, ...frameCases), async (c) => {
        const got = await prober.send(c);
        judge(c, got);
        counts[got.closed ? 'closes' : got.type === 'error' ? 'errors' : 'answers']++;
        expect(fanout.exitCode, 'the fanout is still running').toBeNull();
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 1500) },
    );
  } finally {
    posting = false;
    await station;
    prober.close();
  }
  // Most cases are refusals, and the closes were exercised too.
  expect(counts.errors).toBeGreaterThan((counts.errors + counts.closes + counts.answers) / 2);
  expect(counts.closes).toBeGreaterThan(0);

  // The viewer got every caption posted while all that went on, once and in order.
  const got = await viewer.waitForCaptions(posted, WATCHED);
  expect(got.map((m) => m.seq)).toEqual(Array.from({ length: posted }, (_, i) => i + 1));
  expect(posted).toBeGreaterThan(20);
  expect(viewer.closed).toBeUndefined();
  viewer.close();
}, 300_000);

/** Malformed WebSocket frames, written as raw bytes after a real handshake. */
function rawFrame(first: number, payload: Uint8Array, length = payload.length): Buffer {
  const mask = [0x37, 0xfa, 0x21, 0x3d];
  const head = length < 126 ? [first, 0x80 | length] : [first, 0x80 | 126, length >> 8, length & 0xff];
  return Buffer.concat([Buffer.from(head), Buffer.from(mask), Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]);
}

const brokenFrames = fc.oneof(
  // reserved bits (no extension was agreed)
  fc
    .tuple(fc.constantFrom(0x10, 0x20, 0x40, 0x70), fc.constantFrom(0x1, 0x2), fc.uint8Array({ maxLength: 20 }))
    .map(([rsv, op, p]) => rawFrame(0x80 | rsv | op, p)),
  // reserved opcodes
  fc
    .tuple(fc.constantFrom(0x3, 0x4, 0x5, 0x6, 0x7, 0xb, 0xc, 0xd, 0xe, 0xf), fc.uint8Array({ maxLength: 20 }))
    .map(([op, p]) => rawFrame(0x80 | op, p)),
  // a continuation with nothing to continue
  fc.uint8Array({ maxLength: 20 }).map((p) => rawFrame(0x80, p)),
  // a fragmented ping or pong, or one over 125 bytes
  fc.tuple(fc.constantFrom(0x9, 0xa), fc.uint8Array({ maxLength: 20 })).map(([op, p]) => rawFrame(op, p)),
  fc.tuple(fc.constantFrom(0x9, 0xa), fc.uint8Array({ minLength: 126, maxLength: 200 })).map(([op, p]) => rawFrame(0x80 | op, p)),
  // a text frame that is not UTF-8
  fc
    .uint8Array({ minLength: 1, maxLength: 60 })
    .filter((b) => {
      try {
        utf8.decode(b);
        return false;
      } catch {
        return true;
      }
    })
    .map((p) => rawFrame(0x81, p)),
);

it('cuts a connection that breaks WebSocket framing (1006: no close frame), and only that one', async () => {
  const fanout = sys.procs.get('fanout')!;
  const viewer = await LiveClient.connect(sys.live);
  viewer.subscribe(WATCHED);
  await viewer.waitFor('subscribed', WATCHED);
  await fc.assert(
    fc.asyncProperty(brokenFrames, async (bytes) => {
      const socket = tcpConnect(sys.fanoutPort, '127.0.0.1');
      socket.on('error', () => undefined); // a reset is a cut too
      let data = Buffer.alloc(0);
      socket.on('data', (d: Buffer) => (data = Buffer.concat([data, d])));
      const closed = new Promise((r) => socket.once('close', r));
      socket.write(
        'GET /v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      await waitFor('the handshake', () => data.includes('\r\n\r\n'), 5000, 2);
      const head = data.indexOf('\r\n\r\n') + 4;
      socket.write(bytes);
      await closed;
      expect(data.subarray(head), 'nothing but the cut').toEqual(Buffer.alloc(0));
      expect(fanout.exitCode).toBeNull();
    }),
    { numRuns: 200 },
  );
  await sys.postJson(WATCHED, key, [fragment(++posted)]);
  const got = await viewer.waitForCaptions(1, WATCHED);
  expect(got.map((m) => m.seq)).toEqual([posted]);
  viewer.close();
}, 120_000);
