// Scenario 2: end-to-end latency, per delivery, from the moment a station receives the NDJSON
// acknowledgement of a fragment to the moment a WebSocket subscriber receives it, through the real
// API, Kafka and fanout processes. 100 stations' streams (one per channel) ingest at a fixed total
// rate; subscribers are `ws` clients in two child processes, client i on channel i % 100.
// Fragments are matched by seq (a global counter: unique, increasing per channel and station).
//
// Baseline in the same run: the Kafka part of that path alone, EventLog.append acknowledgement ->
// EventLog.consume receipt (same consumer settings as the fanout), in this process, same rate.
import type { ChildProcess } from 'node:child_process';
import { EventLog } from '../../infra/kafka/index.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';
import { System } from '../support/system.ts';
import {
  CAPTION_TEXT,
  CpuMeter,
  StationStream,
  bucketShares,
  channelNames,
  decodeHistogram,
  forkBench,
  fragmentLine,
  histogram,
  kafkaPid,
  knob,
  latency,
  nextMessage,
  now,
  openStations,
  paceFragments,
  scrapeHistogram,
  scrapeValue,
  send,
  sleep,
  startApp,
  stopChild,
  trackSystem,
  type Latency,
} from './common.ts';
import { dropSystem } from './ingest.ts';

export interface E2ePhase {
  /** Subscribers asked for batch frames. */
  batch: boolean;
  /** Batch frames received (each holds two captions or more). */
  batchFrames: number;
  /** The subscribers' WebSocket client: the `ws` package, or the bench's minimal one (BENCH_E2E_CLIENT). */
  client: 'ws' | 'raw';
  /** Ack -> WS per 5-second window of the time the fragments were sent, over the measured run. */
  windows: Latency[];
  subscribers: number;
  channels: number;
  rate: number;
  seconds: number;
  fragments: number;
  /** Deliveries expected in the measured window (fragments x subscribers of their channel). */
  expected: number;
  /** Deliveries received and matched with their ack. */
  samples: number;
  /** Of those, received before the station had its ack (counted as 0 ms). */
  beforeAck: number;
  missing: number;
  fromAck: Latency;
  fromSend: Latency;
  ingestAck: Latency;
  /** The fanout's own castlog_e2e_latency_seconds (API receipt -> hub hand-off): share of records within each bound, %. */
  fanoutMetric: { total: number; le: Record<string, number> } | undefined;
  clockOffsetMs: number[];
  perChild: { received: number; samples: number; unmatched: number }[];
  /** Stream openings the API answered with an error (503) before they were opened again. */
  refusedStreams: number;
  /** The fanout's own counters over the phase (warm-up included). */
  fanoutCounters: Record<string, number | undefined>;
  connectMs: number;
  cpu: Record<string, number>;
  problems: string[];
}

export interface E2eResult {
  rate: number;
  kafkaFloor: { samples: number; beforeAck: number; latency: Latency; append: Latency };
  /** 100 station streams opened at once right after the API started: how many got an error status. */
  startBurst: { streams: number; refused: number; statuses: number[] };
  phases: E2ePhase[];
}

const START = 1_700_000_000_000;

/** Append-ack -> consume latency of the Kafka leg alone. */
async function kafkaFloor(log: EventLog, channels: string[], rate: number, warmMs: number, runMs: number) {
  const hist = histogram();
  const appendHist = histogram();
  const ackAt = new Map<string, number>();
  const seenAt = new Map<string, number>();
  let measuring = false;
  let samples = 0;
  let beforeAck = 0;
  let consumed = 0;
  let seq = 0;
  let sent = 0;
  let measuredFrom = Infinity;
  const sample = (consumeT: number, ackT: number) => {
    if (consumeT < ackT) beforeAck++;
    hist.recordValue(Math.max(0, Math.round((consumeT - ackT) * 1000)));
    samples++;
  };
  const ends = await log.offsets('captions');
  const consumer = await log.consume({
    groupId: EventLog.privateGroup('castlog-bench-floor'),
    topics: ['captions'],
    startAt: async (_t, p) => ends.find((o) => o.partition === p)?.high,
    onBatch: async (batch) => {
      const t = now();
      for (const r of batch.records) {
        consumed++;
        const k = `${r.partition}:${r.offset}`;
        const a = ackAt.get(k);
        if (a === undefined) seenAt.set(k, t);
        else {
          ackAt.delete(k);
          if ((r.event.data as CaptionFragmentReceived).seq >= measuredFrom) sample(t, a);
        }
      }
    },
  });
  const t0 = now();
  const stopAt = t0 + warmMs + runMs;
  const pending = new Set<Promise<void>>();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const t = now();
      if (t >= stopAt) return (clearInterval(timer), resolve());
      if (!measuring && t >= t0 + warmMs && consumed > 0) {
        measuring = true;
        measuredFrom = seq + 1;
      }
      const due = Math.floor(((t - t0) / 1000) * rate) - sent;
      for (let k = 0; k < due; k++) {
        sent++;
        const channel = channels[sent % channels.length]!;
        const s = ++seq;
        const ta = now();
        const p = log
          .append([
            {
              type: 'CaptionFragmentReceived',
              key: channel,
              source: '/stations/bench',
              data: {
                channel,
                station: 'bench-floor',
                seq: s,
                text: `${CAPTION_TEXT} ${s}`,
                start: START,
                end: START + 90,
                mode: 'rollup',
                lang: 'en',
                receivedAt: Date.now(),
              },
            },
          ])
          .then(([pos]) => {
            const a = now();
            if (s >= measuredFrom) appendHist.recordValue(Math.round((a - ta) * 1000));
            const k2 = `${pos!.partition}:${pos!.offset}`;
            const seen = seenAt.get(k2);
            if (seen === undefined) ackAt.set(k2, a);
            else {
              seenAt.delete(k2);
              if (s >= measuredFrom) sample(seen, a);
            }
          })
          .catch(() => undefined)
          .finally(() => pending.delete(p));
        pending.add(p);
      }
    }, 2);
  });
  await Promise.allSettled([...pending]);
  await sleep(500);
  await consumer.stop();
  return { samples, beforeAck, latency: latency(hist), append: latency(appendHist) };
}

/** The viewers' client: the bench's minimal one by default, so that the CPU the clients need on
 *  this shared box (about half of the `ws` package's) goes to the system measured. */
function e2eClient(): 'ws' | 'raw' {
  const c = process.env.BENCH_E2E_CLIENT ?? 'raw';
  if (c !== 'ws' && c !== 'raw') throw new Error(`BENCH_E2E_CLIENT=${c}: ws or raw`);
  return c;
}

async function phase(
  sys: System,
  keys: string[],
  channels: string[],
  subscribers: number,
  rate: number,
  warmMs: number,
  runMs: number,
  firstSeq: number,
  log: (s: string) => void,
  batch = false,
) {
  const procs = knob('E2E_CLIENT_PROCS', 2);
  const client = e2eClient();
  const problems: string[] = [];
  const children: ChildProcess[] = [];
  const per = Math.ceil(subscribers / procs);
  const subsOf = new Map<string, number>();
  for (let i = 0; i < subscribers; i++) {
    const ch = channels[i % channels.length]!;
    subsOf.set(ch, (subsOf.get(ch) ?? 0) + 1);
  }
  const warmCount = Math.ceil((warmMs / 1000) * rate);
  let streams: StationStream[] = [];
  let refusedStreams = 0;
  try {
    let seq = firstSeq; // the next seq to use
    // One long-running request per channel; station keys shared round-robin. All 100 at once
    // against a fresh API get 503s (see the report), so they open 10 at a time, retrying refusals.
    // They are opened before any subscriber connects: the priming fragments are nobody's delivery.
    const opened = await openStations(
      sys.apiPort,
      channels.map((ch, i) => ({ channel: ch, key: keys[i % keys.length]! })),
      () => {
        const q = seq++;
        return { seq: q, line: fragmentLine(q) };
      },
      knob('E2E_OPEN_CONCURRENCY', 10),
    );
    streams = opened.streams;
    refusedStreams = opened.refused;
    if (opened.refused) log(`e2e: the API refused ${opened.refused} stream openings (${opened.refusals.join(', ')}); retried`);
    const measureFrom = seq + warmCount;
    for (let i = 0; i < procs; i++) children.push(forkBench('./ws-clients.ts'));
    const readies = children.map((c) => nextMessage(c, 'ready', 300_000));
    children.forEach((c, i) =>
      send(c, {
        type: 'start',
        url: sys.live,
        clients: Math.min(per, subscribers - i * per),
        base: i * per,
        channels,
        mode: client,
        measureFrom,
        progressMs: 0,
        batch,
      }),
    );
    const ready = await Promise.all(readies);
    const connectMs = Math.max(...ready.map((r) => r.connectMs as number));
    ready.forEach((r, i) => r.subscribed < r.clients && problems.push(`client process ${i}: only ${r.subscribed}/${r.clients} subscribed`));
    log(`e2e: ${subscribers} subscribers connected and subscribed in ${connectMs} ms`);

    // Clock offsets (child minus us), from the round trip with the smallest delay.
    const clockOffsetMs: number[] = [];
    for (const c of children) {
      let best = { rtt: Infinity, offset: 0 };
      for (let k = 0; k < 20; k++) {
        const t0 = now();
        send(c, { type: 'clock', t0 });
        const m = await nextMessage(c, 'clock', 5000);
        const t1 = now();
        if (t1 - t0 < best.rtt) best = { rtt: t1 - t0, offset: m.tc - (t0 + t1) / 2 };
      }
      send(c, { type: 'offset', offset: best.offset });
      clockOffsetMs.push(Math.round(best.offset * 1000) / 1000);
    }

    const ackHist = histogram();
    let acks: number[] = [];
    let flushQueued = false;
    const flush = () => {
      flushQueued = false;
      const data = acks;
      acks = [];
      for (const c of children) send(c, { type: 'acks', data });
    };
    for (const s of streams) {
      s.onAck = (a) => {
        if (a.seq < measureFrom) return;
        acks.push(a.seq, a.sentAt, a.ackAt);
        ackHist.recordValue(Math.round((a.ackAt - a.sentAt) * 1000));
      };
      s.onDrainAcks = () => {
        if (!flushQueued && acks.length) {
          flushQueued = true;
          setImmediate(flush);
        }
      };
    }

    const meter = new CpuMeter(() => ({
      api: sys.procs.get('api')?.pid,
      fanout: sys.procs.get('fanout')?.pid,
      kafka: kafkaPid(),
      stations: process.pid,
      ...Object.fromEntries(children.map((c, i) => [`clients${i}`, c.pid])),
    }));
    let measuredFragments = 0;
    let expected = 0;
    let expectedAll = 0;
    const metricsUrl = `http://127.0.0.1:${sys.fanoutPort}/metrics`;
    const scrape = () => scrapeHistogram(metricsUrl, 'castlog_e2e_latency_seconds').catch(() => undefined);
    let metricBefore: Promise<Map<number, number> | undefined> = Promise.resolve(undefined);
    const COUNTERS = [
      'castlog_fanout_deliveries_total',
      'castlog_fanout_slow_consumers_total',
      'castlog_fanout_connections',
      'castlog_fanout_subscriptions',
    ];
    const counters = () => Promise.all(COUNTERS.map((n) => scrapeValue(metricsUrl, n)));
    const countersBefore = await counters();
    const total = Math.round(((warmMs + runMs) / 1000) * rate);
    // The fragments at a fixed rate; afterwards seq is the last one used.
    seq = await paceFragments(streams, rate, total, seq, (s, q) => {
      expectedAll += subsOf.get(s.channel) ?? 0;
      if (q === measureFrom) {
        const from = now();
        for (const c of children) send(c, { type: 'windows', from });
        meter.begin();
        metricBefore = scrape();
      }
      if (q >= measureFrom) {
        measuredFragments++;
        expected += subsOf.get(s.channel) ?? 0;
      }
      return fragmentLine(q);
    });
    const cpu = meter.end();
    await Promise.all(streams.map((s) => s.end()));
    flush();
    const errors = streams.reduce((n, s) => n + s.errors, 0);
    for (const s of streams) if (s.status !== 200) problems.push(`stream ${s.channel} answered ${s.status}`);
    if (errors) problems.push(`${errors} fragments refused by the API, e.g. ${streams.find((s) => s.lastError)?.lastError}`);
    // Let the last deliveries land: until all have, or nothing has moved for 8 s.
    let last = -1;
    let still = now();
    for (const until = now() + 30_000; now() < until;) {
      const counts = await Promise.all(children.map((c) => (send(c, { type: 'count' }), nextMessage(c, 'count', 5000))));
      const n = counts.reduce((a, m) => a + (m.received as number), 0);
      if (n >= expectedAll) break;
      if (n !== last) {
        last = n;
        still = now();
      } else if (now() - still > 8000) break;
      await sleep(50);
    }
    const before = await metricBefore;
    const after = await scrape();
    const fanoutMetric = before && after ? bucketShares(before, after) : undefined;
    const countersAfter = await counters();
    const fanoutCounters = {
      deliveries: (countersAfter[0] ?? NaN) - (countersBefore[0] ?? NaN),
      expectedDeliveries: expectedAll,
      slowConsumersClosed: (countersAfter[1] ?? NaN) - (countersBefore[1] ?? NaN),
      connections: countersAfter[2],
      subscriptions: countersAfter[3],
    };
    const results = await Promise.all(children.map((c) => (send(c, { type: 'finish' }), nextMessage(c, 'result', 30_000))));
    const fromAck = histogram();
    const fromSend = histogram();
    let samples = 0;
    let beforeAck = 0;
    let batchFrames = 0;
    const windowHists: ReturnType<typeof histogram>[] = [];
    for (const r of results) {
      batchFrames += (r.batchFrames as number) ?? 0;
      ((r.windows as (string | undefined)[] | undefined) ?? []).forEach((w, i) => {
        if (w) (windowHists[i] ??= histogram()).add(decodeHistogram(w));
      });
    }
    if (process.env.BENCH_DEBUG) {
      results.forEach((r, i) => {
        const byCount = new Map<number, number>();
        for (const c of r.perClient as number[]) byCount.set(c, (byCount.get(c) ?? 0) + 1);
        const counts = JSON.stringify([...byCount].sort((a, b) => a[0] - b[0]).slice(0, 20));
        log(`debug child ${i}: received ${r.received}, clients by received count: ${counts}`);
      });
    }
    for (const r of results) {
      fromAck.add(decodeHistogram(r.fromAck));
      fromSend.add(decodeHistogram(r.fromSend));
      samples += r.samples;
      beforeAck += r.beforeAck;
      if (r.closedUnexpectedly) problems.push(`${r.closedUnexpectedly} subscribers were disconnected`);
      if (r.unmatched) problems.push(`${r.unmatched} deliveries never matched an acknowledgement`);
    }
    const missing = expected - samples;
    if (missing) {
      problems.push(
        `${missing} of ${expected} expected deliveries did not arrive ` +
          `(the fanout counted ${fanoutCounters.deliveries} deliveries of ${expectedAll} over the phase)`,
      );
      for (const app of ['api', 'fanout'] as const) {
        const out = sys.said(app).trim().split('\n').slice(-3).join(' | ');
        if (out) problems.push(`${app} said: ${out.slice(0, 600)}`);
      }
    }
    return {
      phase: {
        batch,
        batchFrames,
        client,
        // The last window is partial (the run ends inside it): only whole ones.
        windows: Array.from({ length: Math.floor(runMs / 5000) }, (_, i) => latency(windowHists[i] ?? histogram())),
        subscribers,
        channels: channels.length,
        rate,
        seconds: runMs / 1000,
        fragments: measuredFragments,
        expected,
        samples,
        beforeAck,
        missing,
        fromAck: latency(fromAck),
        fromSend: latency(fromSend),
        ingestAck: latency(ackHist),
        fanoutMetric,
        clockOffsetMs,
        fanoutCounters,
        refusedStreams,
        perChild: results.map((r) => ({ received: r.received as number, samples: r.samples as number, unmatched: r.unmatched as number })),
        connectMs,
        cpu,
        problems,
      } satisfies E2ePhase,
      nextSeq: seq + 1,
    };
  } finally {
    for (const s of streams) s.destroy();
    await Promise.all(children.map((c) => stopChild(c)));
  }
}

export async function e2eBench(log: (s: string) => void): Promise<E2eResult> {
  const rate = knob('E2E_RATE', 2000);
  const runMs = knob('E2E_SECONDS', 15, 4) * 1000;
  const warmMs = knob('E2E_WARMUP', 3, 2) * 1000;
  const channels = channelNames(knob('E2E_CHANNELS', 100));
  const small = knob('E2E_SUBS_SMALL', 1000, 200);
  const large = knob('E2E_SUBS_LARGE', 10_000, 2000);
  // Where the box has capacity (20k deliveries/s either way), then where it has not, with batch
  // frames; E2E_UNBATCHED=1 adds the last one without them (one caption per frame), for comparison.
  const plan = [
    { subs: small, rate, batch: false },
    { subs: large, rate: rate / 10, batch: false },
    { subs: large, rate, batch: true },
    ...(process.env.BENCH_E2E_UNBATCHED ? [{ subs: large, rate, batch: false }] : []),
  ].filter((_, i) => !process.env.BENCH_E2E_PHASES || process.env.BENCH_E2E_PHASES.split(',').includes(String(i + 1)));
  const sys = trackSystem(await System.create());
  try {
    log(`e2e: Kafka floor (EventLog.append ack -> EventLog.consume) at ${rate}/s`);
    const floor = await kafkaFloor(sys.log, channels, rate, warmMs, Math.min(runMs, 10_000));
    log(`e2e: Kafka floor p50 ${floor.latency.p50} ms p99 ${floor.latency.p99} ms`);
    await startApp(sys, 'api');
    await startApp(sys, 'fanout');
    const keys = await Promise.all(Array.from({ length: 10 }, (_, i) => sys.stationKey(`bench-e2e-${i}`)));
    // What 100 stations connecting at once to a freshly started API get (EventLog.ping herd).
    const burst = await Promise.all(
      channels.map(async (ch, i) => {
        // seq 0: below every seq of the phases, so nothing later is taken for a repeat.
        const s = new StationStream(sys.apiPort, ch, keys[i % keys.length]!);
        s.write([0], fragmentLine(0));
        const status = await Promise.race([s.responded, sleep(30_000).then(() => -1)]);
        await s.end(10_000);
        return status;
      }),
    );
    const startBurst = { streams: burst.length, refused: burst.filter((st) => st !== 200).length, statuses: [...new Set(burst)].sort() };
    log(
      `e2e: ${startBurst.refused} of ${startBurst.streams} streams opened at once on the fresh API were refused ` +
        `(${startBurst.statuses.join(', ')})`,
    );
    await sleep(1500);
    const phases: E2ePhase[] = [];
    let nextSeq = 1;
    for (const { subs, rate: phaseRate, batch } of plan) {
      const r = await phase(sys, keys, channels, subs, phaseRate, warmMs, runMs, nextSeq, log, batch);
      nextSeq = r.nextSeq;
      phases.push(r.phase);
      const windows = r.phase.windows.map((w) => `${w.p50}/${w.p99}/${w.max}`).join(' | ');
      log(
        `e2e: ${subs} subscribers at ${phaseRate}/s${batch ? ' (batch frames)' : ''}: ack->ws p50 ${r.phase.fromAck.p50} ms ` +
          `p99 ${r.phase.fromAck.p99} ms max ${r.phase.fromAck.max} ms (${r.phase.samples} deliveries, ` +
          `${r.phase.batchFrames} batch frames); per 5 s p50/p99/max: ${windows}` +
          `${r.phase.problems.length ? ` PROBLEMS: ${r.phase.problems.join('; ')}` : ''}`,
      );
    }
    return { rate, kafkaFloor: floor, startBurst, phases };
  } finally {
    await sys.stop();
    await dropSystem(sys);
  }
}
