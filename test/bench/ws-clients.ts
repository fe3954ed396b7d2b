// A child process holding many /v1/live WebSocket clients, so their CPU is not the server's.
// Each client subscribes to one channel (client i to channels[i % channels.length]), or to k spread
// over them (channelsOf: i, i + C/k, i + 2C/k, ... modulo C).
//
//   mode 'ws'  : `ws` package clients, as a browser-like client library would be.
//   mode 'raw' : a minimal RFC 6455 client on net.Socket that walks frame headers and reads a
//                caption's seq only when asked to: cheap enough that a million messages a second can
//                be counted on one core, so the server, not the client, is what a run measures.
// Either mode measures latency when measureFrom is set: each caption's seq is matched with the
// acknowledgement time the parent sends (the moment the station's NDJSON ack line arrived), one
// sample per delivery, batch frames included.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';
import { channelsOf, childFatal, cpuSeconds, encodeHistogram, histogram, now, sleep, type Msg } from './common.ts';

interface StartMsg {
  type: 'start';
  url: string;
  clients: number;
  /** Index of this child's first client in the whole population (for the channel layout). */
  base: number;
  channels: string[];
  mode: 'ws' | 'raw';
  /** Latency samples only for seq >= this (earlier ones are warm-up). */
  measureFrom: number;
  /** Send {type:'progress'} with the received count every this many ms (0: never). */
  progressMs: number;
  /** Subscribe with batch: true (the server may send several captions in one batch frame). */
  batch?: boolean;
  /** Open client i's connection from localAddresses[i % length] (one address has ~28k ephemeral ports,
   *  and binding one costs the kernel a scan of the ports its address already uses: spread them). */
  localAddresses?: string[];
  /** Connections being opened at once (default 200). */
  concurrency?: number;
  /** Track each client's caption seqs (first, last, breaks in the +1 sequence) for the snapshot. */
  checkSeq?: boolean;
  /** Channels each client subscribes to (default 1). */
  channelsPerClient?: number;
}

const CAPTION = 0x63; // 'c' of {"type":"caption"
const SUBSCRIBED = 0x73; // 's' of {"type":"subscribed"
const BATCH = 0x62; // 'b' of {"type":"batch"
const SEQ = Buffer.from('"seq":');

// ---------------------------------------------------------------- latency matching

const RING = 1 << 20;
const MASK = RING - 1;
const ackSeq = new Float64Array(RING).fill(-1);
const ackAt = new Float64Array(RING);
const sendAt = new Float64Array(RING);
/** Receipts that arrived before their acknowledgement: seq -> receive times. */
const early = new Map<number, number[]>();
const fromAck = histogram();
const fromSend = histogram();
let measureFrom = Number.MAX_SAFE_INTEGER;
let clockOffset = 0; // this process's clock minus the parent's
let beforeAck = 0;
let samples = 0;
/** Ack -> WS latency per window of the time the station sent the fragment (parent clock), from windowsFrom on. */
const WINDOW_MS = 5000;
let windowsFrom = Infinity;
const windows: ReturnType<typeof histogram>[] = [];
let batchFrames = 0;

function record(seq: number, recvAt: number, slot: number): void {
  const a = recvAt - ackAt[slot]!;
  if (a < 0) beforeAck++;
  const us = Math.max(0, Math.round(a * 1000));
  fromAck.recordValue(us);
  const w = Math.floor((sendAt[slot]! - windowsFrom) / WINDOW_MS);
  if (w >= 0) (windows[w] ??= histogram()).recordValue(us);
  fromSend.recordValue(Math.max(0, Math.round((recvAt - sendAt[slot]!) * 1000)));
  samples++;
}

function onCaptionSeq(seq: number): void {
  if (seq < measureFrom) return;
  const t = now() - clockOffset;
  const slot = seq & MASK;
  if (ackSeq[slot] === seq) return record(seq, t, slot);
  let list = early.get(seq);
  if (!list) early.set(seq, (list = []));
  list.push(t);
}

function onAcks(data: number[]): void {
  for (let i = 0; i < data.length; i += 3) {
    const seq = data[i]!;
    const slot = seq & MASK;
    ackSeq[slot] = seq;
    sendAt[slot] = data[i + 1]!;
    ackAt[slot] = data[i + 2]!;
    const list = early.get(seq);
    if (list) {
      early.delete(seq);
      for (const t of list) record(seq, t, slot);
    }
  }
}

function parseSeq(b: Buffer, from = 0): number {
  let i = b.indexOf(SEQ, from);
  if (i < 0) return -1;
  i += SEQ.length;
  let n = 0;
  for (let c = b[i]!; c >= 0x30 && c <= 0x39; c = b[++i]!) n = n * 10 + (c - 0x30);
  return n;
}

/** Every caption of a batch frame: one "seq": per caption message. */
function onBatch(b: Buffer, idx: number): void {
  batchFrames++;
  for (let i = b.indexOf(SEQ); i >= 0; i = b.indexOf(SEQ, i + SEQ.length)) {
    received++;
    perClient[idx] = perClient[idx]! + 1;
    const seq = parseSeq(b, i);
    if (checkSeq) onClientSeq(idx, seq);
    onCaptionSeq(seq);
  }
}

// ---------------------------------------------------------------- clients

let received = 0;
let subscribed = 0;
let closedUnexpectedly = 0;
const perClient: number[] = [];
/** With checkSeq: per client, the first and last caption seq received and how many times a seq
 *  was not the previous one + 1 (a gap, a repeat or a reordering). */
let checkSeq = false;
const firstSeq: number[] = [];
const lastSeq: number[] = [];
const seqBreaks: number[] = [];

function onClientSeq(idx: number, seq: number): void {
  if (!firstSeq[idx]) firstSeq[idx] = seq;
  else if (seq !== lastSeq[idx]! + 1) seqBreaks[idx] = seqBreaks[idx]! + 1;
  lastSeq[idx] = seq;
}
const closers: (() => void)[] = [];
let finishing = false;

function connectWs(url: string, channels: string[], idx: number, batch = false): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.binaryType = 'nodebuffer';
    ws.once('open', () => {
      for (const channel of channels) ws.send(JSON.stringify({ op: 'subscribe', channel, ...(batch ? { batch } : {}) }));
      resolve();
    });
    ws.once('error', reject);
    ws.on('message', (data: Buffer) => {
      const kind = data[9];
      if (kind === CAPTION) {
        received++;
        perClient[idx] = perClient[idx]! + 1;
        const seq = parseSeq(data);
        if (checkSeq) onClientSeq(idx, seq);
        onCaptionSeq(seq);
      } else if (kind === BATCH) onBatch(data, idx);
      else if (kind === SUBSCRIBED) subscribed++;
    });
    ws.on('close', () => {
      if (!finishing) closedUnexpectedly++;
    });
    closers.push(() => ws.terminate());
  });
}

/** A caption's or a batch frame's captions, from its whole payload. */
function onCaptionPayload(kind: number, payload: Buffer, idx: number): void {
  if (kind === BATCH) return onBatch(payload, idx);
  received++;
  perClient[idx] = perClient[idx]! + 1;
  const seq = parseSeq(payload);
  if (checkSeq) onClientSeq(idx, seq);
  onCaptionSeq(seq);
}

/** Minimal client: handshake, masked subscribe frames, then frames read by walking headers; a
 *  caption's payload is looked at only when seqs are checked or latency measured. */
function connectRaw(url: string, channels: string[], idx: number, batch: boolean, localAddress?: string): Promise<void> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port), noDelay: true, localAddress });
    // The payload of a text frame that spans reads, kept while seqs are wanted.
    const wantSeqs = checkSeq || batch || measureFrom !== Number.MAX_SAFE_INTEGER;
    let body = Buffer.alloc(0);
    let handshaken = false;
    let pending = Buffer.alloc(0);
    // Frame parser state.
    const hdr = Buffer.alloc(14);
    let hdrLen = 0;
    let need = 2;
    let remaining = -1;
    let pos = 0;
    let opcode = 0;
    let kind = 0;
    const frameDone = (payload?: Buffer) => {
      if (opcode === 1) {
        if (kind === CAPTION || kind === BATCH) {
          if (wantSeqs) onCaptionPayload(kind, payload ?? body.subarray(0, pos), idx);
          else {
            received++;
            perClient[idx] = perClient[idx]! + 1;
          }
        } else if (kind === SUBSCRIBED) subscribed++;
      } else if (opcode === 9) {
        // ping: answer with an empty masked pong
        sock.write(Buffer.from([0x8a, 0x80, 0, 0, 0, 0]));
      }
    };
    const onFrames = (c: Buffer) => {
      const n = c.length;
      let i = 0;
      while (i < n) {
        if (remaining < 0) {
          while (hdrLen < need && i < n) hdr[hdrLen++] = c[i++]!;
          if (hdrLen < need) return;
          if (need === 2) {
            const l = hdr[1]! & 0x7f;
            if (l === 126) need = 4;
            else if (l === 127) need = 10;
            if (need > 2) continue;
          }
          const l = hdr[1]! & 0x7f;
          remaining = l === 126 ? hdr.readUInt16BE(2) : l === 127 ? Number(hdr.readBigUInt64BE(2)) : l;
          opcode = hdr[0]! & 0x0f;
          pos = 0;
          kind = 0;
          hdrLen = 0;
          need = 2;
          if (remaining === 0) {
            frameDone();
            remaining = -1;
          }
          continue;
        }
        const take = Math.min(remaining, n - i);
        if (pos <= 9 && pos + take > 9) kind = c[i + 9 - pos]!;
        if (wantSeqs && opcode === 1) {
          if (pos === 0 && take === remaining) {
            // The whole payload is in this read: read it where it lies.
            i += take;
            remaining = -1;
            frameDone(c.subarray(i - take, i));
            continue;
          }
          if (body.length < pos + remaining) {
            const grown = Buffer.allocUnsafe(Math.max(pos + remaining, 2 * body.length));
            body.copy(grown, 0, 0, pos);
            body = grown;
          }
          c.copy(body, pos, i, i + take);
        }
        i += take;
        pos += take;
        remaining -= take;
        if (remaining === 0) {
          frameDone();
          remaining = -1;
        }
      }
    };
    sock.once('connect', () => {
      const key = randomBytes(16).toString('base64');
      sock.write(
        `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    sock.on('data', (c: Buffer) => {
      if (handshaken) return onFrames(c);
      pending = Buffer.concat([pending, c]);
      const end = pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = pending.subarray(0, end).toString('latin1');
      if (!/^HTTP\/1\.1 101/.test(head)) {
        sock.destroy();
        return reject(new Error(`handshake refused: ${head.split('\r\n')[0]}`));
      }
      handshaken = true;
      for (const channel of channels) {
        const payload = Buffer.from(JSON.stringify({ op: 'subscribe', channel, ...(batch ? { batch } : {}) }));
        if (payload.length > 125) throw new Error(`subscribe frame of ${payload.length} bytes: longer than this client writes`);
        const mask = randomBytes(4);
        const frame = Buffer.alloc(6 + payload.length);
        frame[0] = 0x81;
        frame[1] = 0x80 | payload.length;
        mask.copy(frame, 2);
        for (let j = 0; j < payload.length; j++) frame[6 + j] = payload[j]! ^ mask[j & 3]!;
        sock.write(frame);
      }
      const restBytes = pending.subarray(end + 4);
      pending = Buffer.alloc(0);
      resolve();
      if (restBytes.length) onFrames(restBytes);
    });
    sock.on('error', (e) => (handshaken ? undefined : reject(e)));
    sock.on('close', () => {
      if (!finishing) closedUnexpectedly++;
    });
    closers.push(() => sock.destroy());
  });
}

async function start(m: StartMsg): Promise<void> {
  measureFrom = m.measureFrom;
  checkSeq = m.checkSeq === true;
  const connect =
    m.mode === 'raw'
      ? (u: string, ch: string[], i: number) => connectRaw(u, ch, i, m.batch === true, m.localAddresses?.[i % m.localAddresses.length])
      : (u: string, ch: string[], i: number) => connectWs(u, ch, i, m.batch);
  const t0 = performance.now();
  const CONCURRENCY = m.concurrency ?? 200;
  let next = 0;
  let failures = 0;
  let lastError = '';
  const worker = async () => {
    while (next < m.clients) {
      const i = next++;
      perClient[i] = 0;
      firstSeq[i] = lastSeq[i] = seqBreaks[i] = 0;
      const channel = channelsOf(m.channels, m.base + i, m.channelsPerClient);
      for (let attempt = 1; ; attempt++) {
        try {
          await connect(m.url, channel, i);
          break;
        } catch (e) {
          failures++;
          lastError = String(e);
          if (attempt >= 5) throw e;
          await sleep(50 * attempt);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, m.clients) }, worker));
  const deadline = Date.now() + 30_000;
  const subscriptions = m.clients * (m.channelsPerClient ?? 1);
  while (subscribed < subscriptions && Date.now() < deadline) await sleep(20);
  process.send!({
    type: 'ready',
    subscribed,
    subscriptions,
    clients: m.clients,
    connectMs: Math.round(performance.now() - t0),
    failures,
    lastError,
  });
  if (m.progressMs > 0) {
    let last = -1;
    setInterval(() => {
      if (received !== last) {
        last = received;
        process.send!({ type: 'progress', received });
      }
    }, m.progressMs).unref();
  }
}

process.on('message', (m: Msg) => {
  switch (m.type) {
    case 'start':
      void start(m as unknown as StartMsg).catch(childFatal);
      break;
    case 'acks':
      onAcks(m.data as number[]);
      break;
    case 'clock':
      process.send!({ type: 'clock', t0: m.t0, tc: now() });
      break;
    case 'offset':
      clockOffset = m.offset as number;
      break;
    case 'windows':
      windowsFrom = m.from as number;
      break;
    case 'count':
      process.send!({ type: 'count', received });
      break;
    case 'snapshot':
      process.send!({ type: 'snapshot', received, perClient, closedUnexpectedly, ...(checkSeq ? { firstSeq, lastSeq, seqBreaks } : {}) });
      break;
    case 'finish': {
      finishing = true;
      let pendingEarly = 0;
      for (const l of early.values()) pendingEarly += l.length;
      process.send!({
        type: 'result',
        received,
        samples,
        beforeAck,
        unmatched: pendingEarly,
        closedUnexpectedly,
        perClient,
        fromAck: encodeHistogram(fromAck),
        fromSend: encodeHistogram(fromSend),
        windows: windows.map((h) => (h ? encodeHistogram(h) : undefined)),
        batchFrames,
        cpuSeconds: cpuSeconds(process.pid),
      });
      for (const c of closers) c();
      setTimeout(() => process.exit(0), 200);
      break;
    }
  }
});
process.on('SIGTERM', () => process.exit(0));
process.on('uncaughtException', childFatal);
