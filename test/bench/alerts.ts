// Scenario: keyword alerts, in two parts.
//
// 1. Matching: how many captions a second the matcher's index tests against 100,000 saved alerts
// on one core, against the naive loop that tries every alert on every caption (same alerts, same
// captions, same run). Postgres makes the documents and queries exactly as the matcher gets them
// (castlog_search_vector / castlog_search_query); the matching itself is timed alone, in this process.
//
// 2. Latency: from the moment a station has the NDJSON acknowledgement of a caption to the moment
// its AlertMatched arrives on the owner's WebSocket (user:<id>), through the real api, relay,
// matcher and fanout, at a steady total rate over 100 channels; one caption in ten carries the
// alert's word, and other users' alerts fill the matcher's index. Baseline, same run, same
// socket: the same stations' captions arriving on their caption channel (ack -> WS without the
// matcher's hop).
//
// Knobs: BENCH_ALERTS (100000; 20000 quick), BENCH_ALERT_CAPTIONS (20000; 5000 quick),
// BENCH_ALERT_NAIVE_CAPTIONS (200; 50 quick); BENCH_ALERT_RATE fragments/s (2000),
// BENCH_ALERT_SECONDS (15; 5 quick), BENCH_ALERT_WARMUP (3; 2 quick), BENCH_ALERT_OTHERS other
// users' alerts (1000; 200 quick). Runnable on its own: `tsx test/bench/alerts.ts [matching|latency]`.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import WebSocket from 'ws';
import { AlertIndex } from '../../domain/alerts/matcher.ts';
import { parseTsVector } from '../../domain/alerts/tsquery.ts';
import { System, metricValue, waitFor } from '../support/system.ts';
import {
  CAPTION_TEXT,
  CpuMeter,
  channelNames,
  fmt,
  fragmentLine,
  histogram,
  kafkaPid,
  knob,
  latency,
  now,
  openStations,
  paceFragments,
  sleep,
  startApp,
  trackSystem,
  type Histogram,
  type Latency,
  type StationStream,
} from './common.ts';
import { dropSystem } from './ingest.ts';
import { vocabulary } from './search.ts';

export interface AlertsWorkload {
  /** Words captions and alerts are made of. */
  vocabulary: number;
  alerts: number;
  captions: number;
  indexBuildSeconds: number;
  indexedPerSec: number;
  naivePerSec: number;
  ratio: number;
  matchesPerCaption: number;
}

export interface AlertsResult {
  /** 50,000 words: alerts on names and topics, a few matches per caption. */
  typical: AlertsWorkload;
  /** 5,000 words: every word watched by some twenty alerts, hundreds of matches per caption. */
  dense: AlertsWorkload;
}

/** A deterministic generator (the same alerts and captions in every run). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
}

export async function alertsBench(log: (s: string) => void): Promise<AlertsResult> {
  const sys = await System.create();
  try {
    return { typical: await workload(sys, 50_000, log), dense: await workload(sys, 5_000, log) };
  } finally {
    await sys.stop();
  }
}

async function workload(sys: System, vocabularySize: number, log: (s: string) => void): Promise<AlertsWorkload> {
  const nAlerts = knob('ALERTS', 100_000, 20_000);
  const nCaptions = knob('ALERT_CAPTIONS', 20_000, 5_000);
  const nNaive = knob('ALERT_NAIVE_CAPTIONS', 200, 50);
  const vocab = vocabulary(vocabularySize);
  const rnd = random(7);
  // Captions: word rank log-uniform, as in real text. Alerts: what newsrooms watch for — names and
  // topics, any word past the 30 most common, equally likely.
  const word = () => vocab[Math.floor(Math.pow(vocab.length, rnd()))]!;
  const topic = () => vocab[30 + Math.floor(rnd() * (vocab.length - 30))]!;
  const queries = Array.from({ length: nAlerts }, (_, i) => {
    const kind = i % 10;
    if (kind < 5) return topic();
    if (kind < 8) return `${topic()} ${topic()}`;
    if (kind < 9) return `"${topic()} ${topic()}"`;
    return `${topic()} or ${topic()} -${topic()}`;
  });
  const captions = Array.from({ length: nCaptions }, () => Array.from({ length: 6 + Math.floor(rnd() * 9) }, word).join(' '));
  {
    log(
      `alerts (${vocabularySize.toLocaleString()} words): ${nAlerts.toLocaleString()} alerts, ` +
        `${nCaptions.toLocaleString()} captions: asking Postgres for queries and documents`,
    );
    const tsqueries: string[] = [];
    for (let i = 0; i < queries.length; i += 5000) {
      const { rows } = await sql<{ q: string }>`SELECT public.castlog_search_query('en', q)::text AS q
        FROM unnest(${queries.slice(i, i + 5000)}::text[]) WITH ORDINALITY AS x(q, i) ORDER BY x.i`.execute(sys.db);
      tsqueries.push(...rows.map((r) => r.q));
    }
    const docs: string[] = [];
    for (let i = 0; i < captions.length; i += 5000) {
      const { rows } = await sql<{ v: string }>`SELECT public.castlog_search_vector('en', t)::text AS v
        FROM unnest(${captions.slice(i, i + 5000)}::text[]) WITH ORDINALITY AS x(t, i) ORDER BY x.i`.execute(sys.db);
      docs.push(...rows.map((r) => r.v));
    }
    const index = new AlertIndex();
    const t0 = now();
    tsqueries.forEach((q, i) => index.add({ alertId: `a${i}`, userId: 'u', tsquery: q, channels: [], createdAt: 0 }));
    const indexBuildSeconds = (now() - t0) / 1000;
    const parsed = docs.map((d) => ({ channel: 'bench', receivedAt: 1, doc: parseTsVector(d) }));
    // The index: every caption, parse included (the matcher parses each document it gets).
    let matched = 0;
    const t1 = now();
    for (const d of docs) matched += index.match([{ channel: 'bench', receivedAt: 1, doc: parseTsVector(d) }]).length;
    const indexedPerSec = nCaptions / ((now() - t1) / 1000);
    // The naive loop: every alert on a sample of the captions.
    const t2 = now();
    for (const c of parsed.slice(0, nNaive)) index.matchNaive(c);
    const naivePerSec = nNaive / ((now() - t2) / 1000);
    const result = {
      vocabulary: vocabularySize,
      alerts: index.size,
      captions: nCaptions,
      indexBuildSeconds,
      indexedPerSec,
      naivePerSec,
      ratio: indexedPerSec / naivePerSec,
      matchesPerCaption: matched / nCaptions,
    };
    log(
      `alerts (${vocabularySize.toLocaleString()} words): index ${Math.round(indexedPerSec).toLocaleString()} captions/s, ` +
        `naive loop ${naivePerSec.toFixed(1)} captions/s (${result.ratio.toFixed(0)}x), ` +
        `${result.matchesPerCaption.toFixed(2)} matches per caption, index built in ${indexBuildSeconds.toFixed(2)} s`,
    );
    return result;
  }
}

// ---------------------------------------------------------------- 2. ingest ack -> AlertMatched on the WebSocket

export interface AlertsLatencyResult {
  rate: number;
  seconds: number;
  channels: number;
  /** Alerts the matcher held: the measured one and other users'. */
  alerts: number;
  /** One caption in this many carries the alert's word. */
  matchEvery: number;
  /** Matches expected in the measured window (of the fragments the API acknowledged), and received. */
  expected: number;
  /** Matching fragments the API refused (not acknowledged: not expected). */
  refusedMatching: number;
  samples: number;
  missing: number;
  /** Received before the station had its ack (counted as 0 ms). */
  beforeAck: number;
  /** Ingest ack -> AlertMatched on user:<id>. */
  fromAck: Latency;
  /** Baseline: ingest ack -> the caption itself on its channel, same socket, same run. */
  captionFromAck: Latency;
  ingestAck: Latency;
  cpu: Record<string, number>;
  problems: string[];
}

const WORD = 'kingfisher';
const MATCHING = `the ${WORD} was seen on the river again`;
const BASELINE_CHANNELS = 10;

/** Latencies of receipts matched with their acknowledgements, whichever comes first. */
class AckClock {
  private readonly acks = new Map<number, number>();
  private readonly early = new Map<number, number>();
  readonly hist: Histogram = histogram();
  samples = 0;
  beforeAck = 0;
  /** Acknowledged seqs: what should arrive (a fragment the API refused never does). */
  acked = 0;
  ack(seq: number, at: number): void {
    this.acked++;
    const seen = this.early.get(seq);
    if (seen === undefined) return void this.acks.set(seq, at);
    this.early.delete(seq);
    this.record(seen, at);
  }
  received(seq: number, at: number): void {
    const acked = this.acks.get(seq);
    if (acked === undefined) return void this.early.set(seq, at);
    this.acks.delete(seq);
    this.record(at, acked);
  }
  private record(recvAt: number, ackAt: number): void {
    if (recvAt < ackAt) this.beforeAck++;
    this.hist.recordValue(Math.max(0, Math.round((recvAt - ackAt) * 1000)));
    this.samples++;
  }
}

/** Creates alerts through the API, `concurrency` at a time. */
async function createAlerts(api: string, bodies: { user: string; body: unknown }[], concurrency = 16): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < bodies.length) {
      const { user, body } = bodies[next++]!;
      for (let attempt = 1; ; attempt++) {
        const r = await fetch(`${api}/v1/alerts`, {
          method: 'POST',
          headers: { 'x-userid': user, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        if (r.status === 201) break;
        if (attempt >= 5) throw new Error(`POST /v1/alerts answered ${r.status}: ${await r.text()}`);
        await sleep(500);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

export async function alertsLatencyBench(log: (s: string) => void): Promise<AlertsLatencyResult> {
  const rate = knob('ALERT_RATE', 2000);
  const runMs = knob('ALERT_SECONDS', 15, 5) * 1000;
  const warmMs = knob('ALERT_WARMUP', 3, 2) * 1000;
  const others = knob('ALERT_OTHERS', 1000, 200);
  const matchEvery = 10;
  const channels = channelNames(100);
  const sys = trackSystem(await System.create());
  const problems: string[] = [];
  let streams: StationStream[] = [];
  let socket: WebSocket | undefined;
  try {
    await startApp(sys, 'api');
    await startApp(sys, 'relay');
    await startApp(sys, 'fanout');
    await sys.start('matcher');
    const matcherPort = sys.ports.get('matcher')!;

    // Other users' alerts on made-up words no caption here says (the vocabulary past its common
    // English words): they fill the matcher's index and never match, so every AlertMatched is ours.
    const said = new Set(`${CAPTION_TEXT} ${MATCHING}`.split(/\W+/));
    const vocab = vocabulary(5000)
      .slice(300)
      .filter((w) => !said.has(w));
    const users = Array.from({ length: 20 }, () => randomUUID());
    const owner = randomUUID();
    const t0 = now();
    await createAlerts(sys.api, [
      ...Array.from({ length: others }, (_, i) => ({
        user: users[i % users.length]!,
        body: { query: i % 3 ? vocab[(i * 7) % vocab.length]! : `"${vocab[i % 900]} ${vocab[1000 + (i % 3000)]}"` },
      })),
      { user: owner, body: { query: WORD } },
    ]);
    await waitFor(
      'the matcher to hold every alert',
      async () => ((await metricValue(matcherPort, 'castlog_matcher_alerts')) ?? 0) >= others + 1,
      120_000,
    );
    log(`alerts latency: ${others + 1} alerts created and held by the matcher in ${((now() - t0) / 1000).toFixed(1)} s`);

    // The owner's socket: their user channel, and (for the baseline) the first channels' captions.
    const alertClock = new AckClock();
    const captionClock = new AckClock();
    let measureFrom = Infinity;
    socket = new WebSocket(sys.live, { headers: { 'x-userid': owner } });
    await new Promise((resolve, reject) => (socket!.once('open', resolve), socket!.once('error', reject)));
    let subscribed = 0;
    const baselineChannels = new Set(channels.slice(0, BASELINE_CHANNELS));
    socket.on('message', (raw) => {
      const at = now();
      const m = JSON.parse(raw.toString());
      if (m.type === 'subscribed') subscribed++;
      else if (m.type === 'event' && m.event === 'AlertMatched') {
        const seq = Number(/(\d+)$/.exec(m.data.text)?.[1]);
        if (seq >= measureFrom) alertClock.received(seq, at);
      } else if (m.type === 'caption' && m.seq >= measureFrom) captionClock.received(m.seq, at);
    });
    for (const channel of [`user:${owner}`, ...baselineChannels]) socket.send(JSON.stringify({ op: 'subscribe', channel }));
    await waitFor('the subscriptions', () => subscribed === baselineChannels.size + 1);

    const keys = await Promise.all(Array.from({ length: 10 }, (_, i) => sys.stationKey(`bench-alerts-${i}`)));
    let seq = 1;
    const opened = await openStations(
      sys.apiPort,
      channels.map((channel, i) => ({ channel, key: keys[i % keys.length]! })),
      () => {
        const q = seq++;
        return { seq: q, line: fragmentLine(q) };
      },
    );
    streams = opened.streams;
    const warmCount = Math.ceil((warmMs / 1000) * rate);
    measureFrom = seq + warmCount;
    const ackHist = histogram();
    let sentMatching = 0;
    for (const s of streams) {
      s.onAck = (a) => {
        if (a.seq < measureFrom) return;
        ackHist.recordValue(Math.round((a.ackAt - a.sentAt) * 1000));
        if (a.seq % matchEvery === 0) alertClock.ack(a.seq, a.ackAt);
        if (baselineChannels.has(s.channel)) captionClock.ack(a.seq, a.ackAt);
      };
    }
    const meter = new CpuMeter(() => ({
      api: sys.procs.get('api')?.pid,
      relay: sys.procs.get('relay')?.pid,
      matcher: sys.procs.get('matcher')?.pid,
      fanout: sys.procs.get('fanout')?.pid,
      kafka: kafkaPid(),
      stations: process.pid,
    }));
    log(
      `alerts latency: ${rate} fragments/s over ${channels.length} channels, ` +
        `one in ${matchEvery} a match, for ${(warmMs + runMs) / 1000} s`,
    );
    const total = Math.round(((warmMs + runMs) / 1000) * rate);
    await paceFragments(streams, rate, total, seq, (_s, q) => {
      if (q === measureFrom) meter.begin();
      if (q >= measureFrom && q % matchEvery === 0) sentMatching++;
      return fragmentLine(q, q % matchEvery === 0 ? MATCHING : undefined);
    });
    const cpu = meter.end();
    await Promise.all(streams.map((s) => s.end()));
    const refused = streams.reduce((n, s) => n + s.errors, 0);
    if (refused) problems.push(`${refused} fragments refused by the API, e.g. ${streams.find((s) => s.lastError)?.lastError}`);
    // The last matches: until all have come, or nothing has moved for 8 s.
    let last = -1;
    let still = now();
    const expected = alertClock.acked;
    while (alertClock.samples < expected && now() - still < 8000) {
      if (alertClock.samples !== last) {
        last = alertClock.samples;
        still = now();
      }
      await sleep(50);
    }
    const missing = expected - alertClock.samples;
    if (!expected) problems.push('no matching fragment was acknowledged in the measured window: nothing to measure');
    if (missing) problems.push(`${missing} of ${expected} matches did not arrive on the WebSocket`);
    const result: AlertsLatencyResult = {
      rate,
      seconds: runMs / 1000,
      channels: channels.length,
      alerts: others + 1,
      matchEvery,
      expected,
      refusedMatching: sentMatching - expected,
      samples: alertClock.samples,
      missing,
      beforeAck: alertClock.beforeAck,
      fromAck: latency(alertClock.hist),
      captionFromAck: latency(captionClock.hist),
      ingestAck: latency(ackHist),
      cpu,
      problems,
    };
    log(
      `alerts latency: ack -> AlertMatched p50 ${result.fromAck.p50} ms p99 ${result.fromAck.p99} ms max ${result.fromAck.max} ms ` +
        `(${result.samples} matches); ack -> caption p50 ${result.captionFromAck.p50} ms p99 ${result.captionFromAck.p99} ms` +
        `${problems.length ? `; PROBLEMS: ${problems.join('; ')}` : ''}`,
    );
    return result;
  } finally {
    socket?.close();
    for (const s of streams) s.destroy();
    await sys.stop();
    await dropSystem(sys);
  }
}

// ---------------------------------------------------------------- the report's rows

type Row = [scenario: string, metric: string, castlog: string, baseline: string, ratio: string, target: string];

/** The rows and notes of both parts for the bench's table (report.ts). */
export function alertsReport(m: AlertsResult | undefined, l: AlertsLatencyResult | undefined): { rows: Row[]; notes: string[] } {
  const rows: Row[] = [];
  const notes: string[] = [];
  const ms = (x: Latency) => [x.p50, x.p99, x.max].map((v) => fmt(v, 1)).join(' / ');
  const met = (ok: boolean) => (ok ? 'MET' : 'MISSED');
  for (const w of m ? [m.typical, m.dense] : []) {
    rows.push([
      `8 alerts ${fmt(w.alerts)} saved, ${fmt(w.vocabulary)}-word vocabulary`,
      'captions/s matched on one core',
      fmt(w.indexedPerSec),
      `naive loop over every alert ${fmt(w.naivePerSec, 1)}`,
      `${fmt(w.ratio)}x`,
      `>= 20,000: ${met(w.indexedPerSec >= 20_000)}`,
    ]);
    notes.push(
      `alerts ${fmt(w.vocabulary)} words: ${fmt(w.matchesPerCaption, 2)} matches per caption, ` +
        `index of ${fmt(w.alerts)} alerts built in ${fmt(w.indexBuildSeconds, 2)} s, ${fmt(w.captions)} captions timed`,
    );
  }
  if (l) {
    rows.push([
      `9 alerts ${fmt(l.rate)} fragments/s, 1 in ${l.matchEvery} a match`,
      'ack -> AlertMatched on WS p50 / p99 / max ms',
      ms(l.fromAck),
      `ack -> the caption on its channel ${ms(l.captionFromAck)}`,
      l.samples && l.captionFromAck.p99 ? `${(l.fromAck.p99 / l.captionFromAck.p99).toFixed(2)}x` : 'n/a',
      `p99 <= 250: ${met(l.samples > 0 && l.fromAck.p99 <= 250 && l.missing === 0)}`,
    ]);
    rows.push([
      '',
      'matches measured / expected',
      `${fmt(l.samples)} / ${fmt(l.expected)}`,
      `${fmt(l.beforeAck)} before the ack (as 0 ms)`,
      '',
      '',
    ]);
    rows.push(['', 'ingest ack p50 / p99 / max ms (paced)', ms(l.ingestAck), '', '', '']);
    const cpu = Object.entries(l.cpu)
      .map(([k, v]) => `${k} ${v}%`)
      .join(', ');
    notes.push(
      `alerts latency: ${fmt(l.alerts)} alerts held, ${l.channels} channels, ${l.seconds} s measured; CPU: ${cpu}` +
        `${l.problems.length ? `; PROBLEMS: ${l.problems.join('; ')}` : ''}`,
    );
  }
  return { rows, notes };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const which = process.argv[2];
  const log = (s: string) => console.error(s);
  const r =
    which === 'latency'
      ? await alertsLatencyBench(log)
      : which === 'matching'
        ? await alertsBench(log)
        : {
            matching: await alertsBench(log),
            latency: await alertsLatencyBench(log),
          };
  console.log(JSON.stringify(r, null, 2));
}
