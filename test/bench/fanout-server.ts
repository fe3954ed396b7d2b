// A child process serving /v1/live and feeding it caption records as fast as the clients take
// them, with no Kafka in the way:
//   mode 'castlog': the real apps/fanout code path, Hub + startFanoutServer (uWebSockets.js), fed
//                   through hub.onRecords exactly as the tail consumer feeds it (per partition,
//                   in offset order), with a CaptionArchive that is never needed (nobody resumes).
//   mode 'ws'     : a baseline, a plain `ws` WebSocketServer keeping a Set of sockets per channel
//                   and calling ws.send for every (client, message), each message serialized once.
//   mode 'uws'    : the floor, bare uWebSockets.js native pub/sub with no castlog logic:
//                   ws.subscribe(channel) on subscribe, app.publish(channel, json) per message.
// Flow control for both: the parent relays the clients' received count; feeding pauses while more
// than `window` deliveries are in flight, so neither server is measured filling its buffers.
import uWS from 'uWebSockets.js';
import WebSocket, { WebSocketServer } from 'ws';
import { Hub, type CaptionArchive, type Record as HubRecord } from '../../apps/fanout/hub.ts';
import { startFanoutServer } from '../../apps/fanout/server.ts';
import { captionMessage, subscribedMessage } from '../../apps/fanout/protocol.ts';
import { formatPosition } from '../../domain/position.ts';
import { loadConfig } from '../../infra/config.ts';
import { createRegistry } from '../../infra/metrics.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';
import { CAPTION_TEXT, childFatal, cpuSeconds, type Msg } from './common.ts';
import { fanoutMetrics } from '../../apps/fanout/metrics.ts';

const PARTITIONS = TOPICS.captions.partitions;
const START = 1_700_000_000_000;

let mode: 'castlog' | 'ws' | 'uws' = 'castlog';
let bare: uWS.TemplatedApp | undefined;
let channels: string[] = [];
/** Channels of each partition, so a round is one onRecords call per partition. */
let byPartition: string[][] = [];
const nextOffset: number[] = Array(PARTITIONS).fill(0);
const nextSeq = new Map<string, number>();
const fed = new Map<string, number>();

let sent = 0;
let received = 0;
let slowClosed = 0;
let wake: (() => void) | undefined;

let hub: Hub | undefined;
const listeners = new Map<string, Set<WebSocket>>();
let wss: WebSocketServer | undefined;
let closeServer: () => void = () => undefined;

function caption(channel: string): CaptionFragmentReceived {
  const seq = (nextSeq.get(channel) ?? 0) + 1;
  nextSeq.set(channel, seq);
  fed.set(channel, (fed.get(channel) ?? 0) + 1);
  return {
    channel,
    station: 'bench-station',
    seq,
    text: `${CAPTION_TEXT} ${seq}`,
    start: START + seq * 100,
    end: START + seq * 100 + 90,
    mode: 'rollup',
    lang: 'en',
    receivedAt: Date.now(),
  };
}

/** One round: `perChannel` new captions on every channel. */
function feedRound(perChannel: number): number {
  let records = 0;
  for (let p = 0; p < PARTITIONS; p++) {
    const chans = byPartition[p]!;
    if (!chans.length) continue;
    const recs: HubRecord[] = [];
    for (let k = 0; k < perChannel; k++) for (const ch of chans) recs.push({ offset: nextOffset[p]!++, data: caption(ch) });
    records += recs.length;
    if (hub) {
      hub.onRecords(p, recs);
      continue;
    }
    if (bare) {
      for (const r of recs) {
        const topic = r.data.channel;
        bare.publish(topic, captionMessage(r.data, formatPosition({ partition: p, offset: r.offset })), false, false);
        sent += bare.numSubscribers(topic);
      }
      continue;
    }
    // Baseline: serialize each message once, then ws.send it to every subscriber of its channel.
    const perCh = new Map<string, Buffer[]>();
    for (const r of recs) {
      let l = perCh.get(r.data.channel);
      if (!l) perCh.set(r.data.channel, (l = []));
      l.push(Buffer.from(captionMessage(r.data, formatPosition({ partition: p, offset: r.offset }))));
    }
    for (const [ch, msgs] of perCh) {
      const set = listeners.get(ch);
      if (!set) continue;
      for (const ws of set) {
        for (const m of msgs) ws.send(m, { binary: false });
        sent += msgs.length;
      }
    }
  }
  return records;
}

async function startServer(m: Msg): Promise<number> {
  mode = m.mode;
  channels = m.channels;
  byPartition = Array.from({ length: PARTITIONS }, () => []);
  for (const ch of channels) byPartition[partitionFor(ch, PARTITIONS)]!.push(ch);
  if (mode === 'castlog') {
    // As apps/fanout/main.ts wires it, metrics included; only the archive is a stub.
    const metrics = createRegistry('fanout-bench');
    const { deliveries, slowClosed: slow, e2e } = fanoutMetrics(metrics);
    const archive: CaptionArchive = { after: async () => ({ rows: [], appliedUpTo: 0 }) };
    hub = new Hub({
      partitions: PARTITIONS,
      startOffsets: Array(PARTITIONS).fill(0),
      historyCapacity: m.history,
      maxBackpressure: m.maxBackpressure,
      archive,
      stats: {
        delivered: (n) => {
          sent += n;
          deliveries.inc(n);
        },
        slowClosed: () => {
          slowClosed++;
          slow.inc();
        },
        fannedOut: (_p, _o, receivedAt) => e2e.observe(Math.max(0, Date.now() - receivedAt) / 1000),
      },
    });
    // Written as the fanout app writes them: its slices and budget (FANOUT_WRITE_SLICES, FANOUT_WRITES_PER_TURN).
    const { fanoutWriteSlices: writeSlices, fanoutWritesPerTurn: writesPerTurn } = loadConfig(process.env);
    const server = await startFanoutServer(
      { captions: hub },
      { port: 0, maxBackpressure: m.maxBackpressure, metrics, ready: async () => true, writeSlices, writesPerTurn },
    );
    closeServer = () => server.close();
    return server.port;
  }
  if (mode === 'uws') {
    const decoder = new TextDecoder();
    const app = uWS.App().ws('/v1/live', {
      compression: uWS.DISABLED,
      maxBackpressure: 64 * 1024 * 1024,
      message: (ws, raw) => {
        let msg: { op?: string; channel?: string };
        try {
          msg = JSON.parse(decoder.decode(raw));
        } catch {
          return;
        }
        if (msg.op !== 'subscribe' || typeof msg.channel !== 'string') return;
        ws.subscribe(msg.channel);
        const p = partitionFor(msg.channel, PARTITIONS);
        ws.send(subscribedMessage(msg.channel, formatPosition({ partition: p, offset: nextOffset[p]! - 1 }), false), false);
      },
    });
    bare = app;
    return new Promise((resolve, reject) =>
      app.listen('127.0.0.1', 0, (token) => {
        if (!token) return reject(new Error('bare uWS cannot listen'));
        closeServer = () => uWS.us_listen_socket_close(token);
        resolve(uWS.us_socket_local_port(token));
      }),
    );
  }
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 16 * 1024, clientTracking: true });
  wss.on('connection', (ws) => {
    const mine = new Set<string>();
    ws.on('message', (raw) => {
      let msg: { op?: string; channel?: string };
      try {
        msg = JSON.parse(raw.toString());
      } catch {
        return;
      }
      if (msg.op !== 'subscribe' || typeof msg.channel !== 'string') return;
      let set = listeners.get(msg.channel);
      if (!set) listeners.set(msg.channel, (set = new Set()));
      set.add(ws);
      mine.add(msg.channel);
      const p = partitionFor(msg.channel, PARTITIONS);
      ws.send(subscribedMessage(msg.channel, formatPosition({ partition: p, offset: nextOffset[p]! - 1 }), false));
    });
    ws.on('close', () => {
      for (const ch of mine) listeners.get(ch)?.delete(ws);
    });
  });
  await new Promise<void>((r) => wss!.once('listening', () => r()));
  closeServer = () => {
    for (const c of wss!.clients) c.terminate();
    wss!.close();
  };
  return (wss.address() as { port: number }).port;
}

async function run(m: Msg): Promise<void> {
  const { durationMs, perChannel, window } = m as unknown as { durationMs: number; perChannel: number; window: number };
  const cpu0 = cpuSeconds(process.pid) ?? 0;
  const t0 = performance.now();
  let rounds = 0;
  let records = 0;
  let waits = 0;
  while (performance.now() - t0 < durationMs) {
    if (sent - received > window) {
      waits++;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 5);
      });
      wake = undefined;
      continue;
    }
    records += feedRound(perChannel);
    rounds++;
    await new Promise((r) => setImmediate(r));
  }
  const feedMs = performance.now() - t0;
  const perChannelFed = Object.fromEntries(fed);
  process.send!({
    type: 'fed',
    records,
    rounds,
    waits,
    sent,
    slowClosed,
    feedMs,
    perChannel: perChannelFed,
    cpuSeconds: (cpuSeconds(process.pid) ?? 0) - cpu0,
  });
}

process.on('message', (m: Msg) => {
  switch (m.type) {
    case 'start':
      void startServer(m).then((port) => process.send!({ type: 'listening', port, pid: process.pid }), childFatal);
      break;
    case 'progress':
      received = m.received as number;
      wake?.();
      break;
    case 'run':
      void run(m).catch(childFatal);
      break;
    case 'stats':
      process.send!({
        type: 'stats',
        sent,
        slowClosed,
        cpuSeconds: cpuSeconds(process.pid),
        connections: mode === 'ws' ? wss!.clients.size : mode === 'uws' ? undefined : hub?.subscriptionCount(),
      });
      break;
    case 'round':
      // One round now (the connections scenario: one live caption per channel to idle subscribers).
      process.send!({ type: 'rounded', records: feedRound((m.perChannel as number) ?? 1), sent, perChannel: Object.fromEntries(fed) });
      break;
    case 'memory': {
      // After a full collection (the parent forks with --expose-gc), so garbage is not counted as held.
      (globalThis as { gc?: () => void }).gc?.();
      const mem = process.memoryUsage();
      process.send!({ type: 'memory', rss: mem.rss, heapUsed: mem.heapUsed, external: mem.external, gc: 'gc' in globalThis });
      break;
    }
    case 'stop':
      closeServer();
      setTimeout(() => process.exit(0), 100);
      break;
  }
});
process.on('SIGTERM', () => process.exit(0));
process.on('uncaughtException', childFatal);
