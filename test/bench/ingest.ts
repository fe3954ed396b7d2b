// Scenario 1: ingest fragments/s through the real API (NDJSON over long-running requests, several
// stations at once, acks=all), with the station-side ack latency. Baselines in the same run, on the
// same topic: EventLog.append in-process (the API's own Kafka path without HTTP) and a raw kafkajs
// idempotent producer sending pre-encoded batches with acks=all (what Kafka takes from one client).
import { Kafka, logLevel } from 'kafkajs';
import { EventLog } from '../../infra/kafka/index.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { newMeta, toHeaders } from '../../schemas/envelope.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { System } from '../support/system.ts';
import { dropNamed } from '../support/test-data.ts';
import {
  CAPTION_TEXT,
  CpuMeter,
  StationStream,
  fragmentLine,
  openStations,
  histogram,
  kafkaPid,
  knob,
  latency,
  measureWindow,
  now,
  startApp,
  trackSystem,
  type Latency,
} from './common.ts';

export interface IngestResult {
  stations: number;
  windowPerStation: number;
  seconds: number;
  rounds: number;
  /** fragments/s of every round, best first not implied. */
  all: { api: number[]; eventLogAppend: number[]; rawKafka: number[] };
  /** errors: lines the API answered with an error (e.g. "not stored: Kafka is unavailable"), over the whole run. */
  api: {
    fragmentsPerSec: number;
    acked: number;
    errors: number;
    refusedStreams: number;
    lastError?: string;
    ack: Latency;
    cpu: Record<string, number>;
  };
  /** failures: appends that rejected (EventLog's 900 ms append timeout), over the whole run. */
  eventLogAppend: { fragmentsPerSec: number; failures: number; ack: Latency; cpu: Record<string, number> };
  rawKafka: { fragmentsPerSec: number; batch: number; perBatch: Latency; cpu: Record<string, number> };
  ratioToEventLog: number;
  ratioToRawKafka: number;
}

const START = 1_700_000_000_000;
const dataFor = (channel: string, station: string, seq: number) => ({
  channel,
  station,
  seq,
  text: `${CAPTION_TEXT} ${seq}`,
  start: START + seq * 100,
  end: START + seq * 100 + 90,
  mode: 'rollup' as const,
  lang: 'en',
  receivedAt: Date.now(),
});

/** Closed loop through the API: each station keeps `window` fragments unacknowledged. */
async function throughApi(sys: System, keys: string[], window: number, warmMs: number, runMs: number, meter: CpuMeter, seqBase: number) {
  const hist = histogram();
  let seq = seqBase;
  let inWindow = 0;
  let stopping = false;
  let measuring = false;
  let errors = 0;
  const opened = await openStations(
    sys.apiPort,
    keys.map((key, i) => ({ channel: `bench.ingest${i}`, key })),
    () => {
      const q = ++seq;
      return { seq: q, line: fragmentLine(q) };
    },
  );
  const streams = opened.streams;
  const topUp = (s: StationStream) => {
    if (stopping) return;
    const n = window - s.outstanding;
    if (n < Math.min(64, window)) return; // write in chunks, not line by line
    const seqs: number[] = [];
    let lines = '';
    for (let k = 0; k < n; k++) {
      seqs.push(++seq);
      lines += fragmentLine(seq);
    }
    s.write(seqs, lines);
  };
  for (const s of streams) {
    s.onAck = (a) => {
      if (!measuring) return;
      inWindow++;
      hist.recordValue(Math.round((a.ackAt - a.sentAt) * 1000));
    };
    s.onDrainAcks = () => topUp(s);
    topUp(s);
  }
  const { seconds, cpu } = await measureWindow(warmMs, runMs, meter, (on) => void (measuring = on));
  stopping = true;
  await Promise.all(streams.map((s) => s.end()));
  for (const s of streams) {
    errors += s.errors;
    if (s.status !== 200) throw new Error(`ingest answered ${s.status}`);
  }
  const lastError = streams.find((s) => s.lastError)?.lastError;
  return {
    fragmentsPerSec: Math.round(inWindow / seconds),
    acked: inWindow,
    errors,
    refusedStreams: opened.refused,
    ...(lastError ? { lastError } : {}),
    ack: latency(hist),
    cpu,
  };
}

/** The same closed loop straight into EventLog.append, in this process (no HTTP, same group commit). */
async function throughEventLog(log: EventLog, stations: number, window: number, warmMs: number, runMs: number, meter: CpuMeter) {
  const hist = histogram();
  let seq = 0;
  let count = 0;
  let stopping = false;
  let measuring = false;
  let failures = 0;
  const inflight = new Set<Promise<void>>();
  const one = (i: number): void => {
    if (stopping) return;
    const channel = `bench.ingest${i}`;
    const t = now();
    const p = log
      .append([
        { type: 'CaptionFragmentReceived', key: channel, source: '/stations/bench', data: dataFor(channel, `bench-ingest-${i}`, ++seq) },
      ])
      .then(
        () => {
          if (measuring) {
            count++;
            hist.recordValue(Math.round((now() - t) * 1000));
          }
        },
        () => void failures++,
      )
      .finally(() => {
        inflight.delete(p);
        one(i);
      });
    inflight.add(p);
  };
  for (let i = 0; i < stations; i++) for (let k = 0; k < window; k++) one(i);
  const { seconds, cpu } = await measureWindow(warmMs, runMs, meter, (on) => void (measuring = on));
  stopping = true;
  while (inflight.size) await Promise.allSettled([...inflight]);
  return { fragmentsPerSec: Math.round(count / seconds), failures, ack: latency(hist), cpu };
}

/** Kafka's own ceiling for this client library and these settings: pre-encoded batches, acks=all. */
async function rawKafka(log: EventLog, stations: number, batch: number, warmMs: number, runMs: number, meter: CpuMeter) {
  const kafka = new Kafka({
    clientId: 'castlog-bench',
    brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(','),
    logLevel: logLevel.NOTHING,
  });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  const topic = log.topicName('captions');
  const messages = Array.from({ length: batch }, (_, k) => {
    const i = k % stations;
    const channel = `bench.ingest${i}`;
    return {
      key: channel,
      partition: partitionFor(channel, TOPICS.captions.partitions),
      value: log.codec.encode('CaptionFragmentReceived', dataFor(channel, `bench-ingest-${i}`, k + 1)),
      headers: toHeaders(newMeta('CaptionFragmentReceived', '/stations/bench')),
    };
  });
  const hist = histogram();
  let count = 0;
  let measuring = false;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const t = now();
      await producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages }] });
      if (measuring) {
        count += batch;
        hist.recordValue(Math.round((now() - t) * 1000));
      }
    }
  })();
  const { seconds, cpu } = await measureWindow(warmMs, runMs, meter, (on) => void (measuring = on));
  stop = true;
  await loop;
  await producer.disconnect();
  return { fragmentsPerSec: Math.round(count / seconds), batch, perBatch: latency(hist), cpu };
}

export async function ingestBench(log: (s: string) => void): Promise<IngestResult> {
  const stations = knob('INGEST_STATIONS', 8, 4);
  const window = knob('INGEST_WINDOW', 500, 200);
  const runMs = knob('INGEST_SECONDS', 8, 3) * 1000;
  const warmMs = knob('INGEST_WARMUP', 2, 1) * 1000;
  const batch = knob('INGEST_RAW_BATCH', 2000, 1000);
  const rounds = knob('INGEST_ROUNDS', 2, 1);
  const sys = trackSystem(await System.create());
  try {
    const kafka = kafkaPid();
    await startApp(sys, 'api');
    const keys = await Promise.all(Array.from({ length: stations }, (_, i) => sys.stationKey(`bench-ingest-${i}`)));
    const self = new CpuMeter(() => ({ bench: process.pid, kafka }));
    const withApi = new CpuMeter(() => ({ api: sys.procs.get('api')?.pid, kafka, stations: process.pid }));
    // Alternating rounds (raw, EventLog, API, then API, EventLog, raw...): load from elsewhere on
    // the machine falls on all three alike; the best of each is kept.
    const raws: Awaited<ReturnType<typeof rawKafka>>[] = [];
    const directs: Awaited<ReturnType<typeof throughEventLog>>[] = [];
    const apis: Awaited<ReturnType<typeof throughApi>>[] = [];
    for (let r = 0; r < rounds; r++) {
      const steps = [
        async () => {
          raws.push(await rawKafka(sys.log, stations, batch, warmMs, runMs, self));
          log(`ingest: raw kafkajs ${raws.at(-1)!.fragmentsPerSec.toLocaleString()} fragments/s (batches of ${batch})`);
        },
        async () => {
          directs.push(await throughEventLog(sys.log, stations, window, warmMs, runMs, self));
          log(`ingest: EventLog.append ${directs.at(-1)!.fragmentsPerSec.toLocaleString()} fragments/s`);
        },
        async () => {
          const a = await throughApi(sys, keys, window, warmMs, runMs, withApi, 10_000_000 * (r + 1));
          apis.push(a);
          log(`ingest: API ${a.fragmentsPerSec.toLocaleString()} fragments/s, ack p50 ${a.ack.p50} ms p99 ${a.ack.p99} ms`);
        },
      ];
      for (const step of r % 2 ? steps.reverse() : steps) await step();
    }
    const best = <T extends { fragmentsPerSec: number }>(xs: T[]): T =>
      xs.reduce((a, b) => (b.fragmentsPerSec > a.fragmentsPerSec ? b : a));
    const api = best(apis);
    const direct = best(directs);
    const raw = best(raws);
    return {
      stations,
      windowPerStation: window,
      seconds: runMs / 1000,
      rounds,
      api,
      eventLogAppend: direct,
      rawKafka: raw,
      all: {
        api: apis.map((a) => a.fragmentsPerSec),
        eventLogAppend: directs.map((a) => a.fragmentsPerSec),
        rawKafka: raws.map((a) => a.fragmentsPerSec),
      },
      ratioToEventLog: Math.round((api.fragmentsPerSec / Math.max(1, direct.fragmentsPerSec)) * 100) / 100,
      ratioToRawKafka: Math.round((api.fragmentsPerSec / Math.max(1, raw.fragmentsPerSec)) * 100) / 100,
    };
  } finally {
    await sys.stop();
    await dropSystem(sys);
  }
}

/** Removes a System's database and topics once its scenario is done (best effort). */
export async function dropSystem(sys: System): Promise<void> {
  await dropNamed(sys.name, sys.env.DATABASE_URL!, process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').catch(() => undefined);
}
