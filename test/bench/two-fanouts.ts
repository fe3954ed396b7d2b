// Scenario `twoFanouts` (issue 10, goal 6): two real fanout processes (apps/fanout/main.ts) on one
// log, subscribers split across them. Every subscriber must get every caption of its channel
// appended after it subscribed: the right count, no gap, no repeat (per-client seq check in
// test/bench/ws-clients.ts). And the deliveries add up: the same subscribers and the same captions
// served by one fanout, then by two, in the same run (runs alternate one, two, two, one, ...).
//
// Captions go straight to the log (EventLog.append, BenchCaptions: per channel seq 1, 2, 3, ...),
// closed-loop: a chunk is appended only while fewer than WINDOW deliveries are in flight, so the
// fanouts are measured delivering, not filling socket buffers. The window is large (100 captions
// per subscriber, ~23 KB per socket): a small one makes the rate Kafka's round trip (append ->
// fetch -> deliver, hundreds of ms on a loaded box) divided into the window, not the fanouts'. Both fanouts run throughout (each
// tails the whole log); in a one-fanout run the second has no subscribers.
import type { ChildProcess } from 'node:child_process';
import { System } from '../support/system.ts';
import {
  BenchCaptions,
  CpuMeter,
  channelNames,
  fmt,
  forkBench,
  kafkaPid,
  knob,
  nextMessage,
  now,
  scrapeValue,
  send,
  sleep,
  startApp,
  stopChild,
  trackSystem,
  type Msg,
} from './common.ts';
import { dropSystem } from './ingest.ts';

export interface TwoFanoutsRun {
  fanouts: 1 | 2;
  subscribers: number;
  captions: number;
  deliveries: number;
  seconds: number;
  deliveriesPerSec: number;
  /** Deliveries per CPU-second of the fanout processes serving the subscribers. */
  perFanoutCpuSecond: number;
  /** Deliveries each fanout counted (castlog_fanout_deliveries_total). */
  perFanout: number[];
  verified: boolean;
  problems: string[];
  cpu: Record<string, number>;
}

export interface TwoFanoutsResult {
  subscribers: number;
  channels: number;
  captionsPerRun: number;
  window: number;
  runs: TwoFanoutsRun[];
  /** Best two-fanout run / best one-fanout run. */
  ratio: number;
  cpuRatio: number;
}

const CHUNK = 200;
const E2E_COUNT = 'castlog_e2e_latency_seconds_count';
const DELIVERIES = 'castlog_fanout_deliveries_total';

/** Waits until a fanout has handed out every caption appended so far (its e2e histogram counts each). */
async function caughtUp(port: number, appended: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const seen = (await scrapeValue(`http://127.0.0.1:${port}/metrics`, E2E_COUNT)) ?? 0;
    if (seen >= appended) return;
    if (Date.now() > deadline) throw new Error(`the fanout on ${port} read ${seen} of ${appended} captions`);
    await sleep(50);
  }
}

async function runOnce(
  systems: System[],
  fanouts: 1 | 2,
  o: { subscribers: number; channels: string[]; captions: number; window: number; gen: BenchCaptions; appended: number },
): Promise<{ run: TwoFanoutsRun; appended: number }> {
  const problems: string[] = [];
  const ports = systems.map((s) => s.fanoutPort);
  await Promise.all(ports.map((p) => caughtUp(p, o.appended)));
  // Two client processes, half the subscribers each: both on the first fanout, or one on each.
  const half = o.subscribers / 2;
  const clients: ChildProcess[] = [forkBench('./ws-clients.ts'), forkBench('./ws-clients.ts')];
  const received = [0, 0];
  let wake: (() => void) | undefined;
  try {
    const ready = clients.map((c) => nextMessage(c, 'ready', 300_000));
    clients.forEach((c, k) => {
      c.on('message', (m: Msg) => {
        if (m.type !== 'progress') return;
        received[k] = m.received as number;
        wake?.();
      });
      send(c, {
        type: 'start',
        url: `ws://127.0.0.1:${ports[fanouts === 2 ? k : 0]}/v1/live`,
        clients: half,
        base: k * half,
        channels: o.channels,
        mode: 'raw',
        measureFrom: Number.MAX_SAFE_INTEGER,
        progressMs: 5,
        checkSeq: true,
      });
    });
    const r = await Promise.all(ready);
    const subscribed = r.reduce((a, x) => a + (x.subscribed as number), 0);
    if (subscribed < o.subscribers) throw new Error(`only ${subscribed} of ${o.subscribers} subscribers subscribed`);
    const deliveriesBefore = await Promise.all(ports.map((p) => scrapeValue(`http://127.0.0.1:${p}/metrics`, DELIVERIES)));

    // Subscribers per channel, as ws-clients lays them out (client i of the population on channel i % channels).
    const perChannel = new Map<string, number>();
    for (let i = 0; i < o.subscribers; i++) {
      const ch = o.channels[i % o.channels.length]!;
      perChannel.set(ch, (perChannel.get(ch) ?? 0) + 1);
    }
    const firstSeq = new Map<string, number>();
    const lastSeq = new Map<string, number>();
    const meter = new CpuMeter(() => ({
      fanoutA: systems[0]!.procs.get('fanout')?.pid,
      fanoutB: systems[1]!.procs.get('fanout')?.pid,
      clients0: clients[0]!.pid,
      clients1: clients[1]!.pid,
      kafka: kafkaPid(),
    }));
    meter.begin();
    const t0 = now();
    let expected = 0;
    let appended = 0;
    const total = () => received[0]! + received[1]!;
    while (appended < o.captions) {
      if (expected - total() > o.window) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 5);
        });
        wake = undefined;
        continue;
      }
      const events = [];
      for (let k = 0; k < CHUNK && appended + k < o.captions; k++) {
        const ch = o.channels[(o.appended + appended + k) % o.channels.length]!;
        const e = o.gen.next(ch);
        if (!firstSeq.has(ch)) firstSeq.set(ch, e.data.seq);
        lastSeq.set(ch, e.data.seq);
        expected += perChannel.get(ch) ?? 0;
        events.push(e);
      }
      // A failed append is not sent again: a repeat in the log would be a repeat to every subscriber.
      await systems[0]!.log.append(events);
      appended += events.length;
    }
    const deadline = Date.now() + 60_000;
    while (total() < expected && Date.now() < deadline) await sleep(5);
    const t1 = now();
    const cpu = meter.end();
    if (total() < expected) problems.push(`only ${total()} of ${expected} deliveries arrived`);

    let wrong = 0;
    let closed = 0;
    for (const [k, c] of clients.entries()) {
      const reply = nextMessage(c, 'snapshot', 60_000);
      send(c, { type: 'snapshot' });
      const snap = await reply;
      closed += snap.closedUnexpectedly as number;
      const counts = snap.perClient as number[];
      counts.forEach((count, i) => {
        const ch = o.channels[(k * half + i) % o.channels.length]!;
        const first = firstSeq.get(ch) ?? 0;
        const last = lastSeq.get(ch) ?? 0;
        const ok =
          count === (first ? last - first + 1 : 0) &&
          (snap.seqBreaks as number[])[i] === 0 &&
          (snap.firstSeq as number[])[i] === first &&
          (snap.lastSeq as number[])[i] === last;
        if (!ok) wrong++;
      });
    }
    if (wrong) problems.push(`${wrong} subscribers did not get exactly their channel's captions in order (count, gap, repeat)`);
    if (closed) problems.push(`${closed} subscribers were closed by the server`);
    const deliveriesAfter = await Promise.all(ports.map((p) => scrapeValue(`http://127.0.0.1:${p}/metrics`, DELIVERIES)));
    const perFanout = deliveriesAfter.map((a, i) => (a ?? 0) - (deliveriesBefore[i] ?? 0));
    // The deliveries add up: what the fanouts say they handed out is what the subscribers got.
    const handed = perFanout.reduce((a, b) => a + b, 0);
    if (handed !== total()) problems.push(`the fanouts counted ${handed} deliveries, the subscribers ${total()}`);
    const seconds = (t1 - t0) / 1000;
    const fanoutCpu = (((cpu.fanoutA ?? 0) + (fanouts === 2 ? (cpu.fanoutB ?? 0) : 0)) / 100) * seconds;
    return {
      appended,
      run: {
        fanouts,
        subscribers: o.subscribers,
        captions: appended,
        deliveries: total(),
        seconds: Math.round(seconds * 1000) / 1000,
        deliveriesPerSec: Math.round(total() / seconds),
        perFanoutCpuSecond: fanoutCpu > 0 ? Math.round(total() / fanoutCpu) : 0,
        perFanout,
        verified: problems.length === 0,
        problems,
        cpu,
      },
    };
  } finally {
    for (const c of clients) send(c, { type: 'finish' });
    await Promise.all(clients.map((c) => stopChild(c)));
  }
}

export async function twoFanoutsBench(log: (s: string) => void): Promise<TwoFanoutsResult> {
  const channels = channelNames(100);
  // Even, so both client processes hold the same share of every channel.
  const subscribers = Math.round(knob('TWO_SUBS', 10_000, 2_000) / (2 * channels.length)) * 2 * channels.length;
  const captions = knob('TWO_CAPTIONS', 50_000, 5_000);
  const rounds = knob('TWO_ROUNDS', 2, 1);
  const window = knob('TWO_WINDOW', 1_000_000, 200_000);
  log(
    `twoFanouts: ${subscribers.toLocaleString()} subscribers on ${channels.length} channels, ` +
      `${captions.toLocaleString()} captions per run, one fanout vs two, ${rounds} round(s)`,
  );
  const sys = trackSystem(await System.create());
  const other = trackSystem(await System.sharing(sys));
  try {
    await startApp(sys, 'fanout');
    await startApp(other, 'fanout');
    const gen = new BenchCaptions();
    let appended = 0;
    const runs: TwoFanoutsRun[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const fanouts of r % 2 ? ([2, 1] as const) : ([1, 2] as const)) {
        const x = await runOnce([sys, other], fanouts, { subscribers, channels, captions, window, gen, appended });
        appended += x.appended;
        runs.push(x.run);
        const run = x.run;
        log(
          `twoFanouts: ${fanouts} fanout(s): ${run.deliveriesPerSec.toLocaleString()} deliveries/s, ` +
            `${run.perFanoutCpuSecond.toLocaleString()} per fanout CPU-s, ` +
            `per fanout ${run.perFanout.map((n) => n.toLocaleString()).join(' + ')} ` +
            `(CPU ${Object.entries(run.cpu)
              .map(([k, v]) => `${k} ${v}%`)
              .join(', ')})${run.verified ? '' : ` PROBLEMS: ${run.problems.join('; ')}`}`,
        );
      }
    }
    const best = (n: 1 | 2, k: 'deliveriesPerSec' | 'perFanoutCpuSecond') =>
      Math.max(...runs.filter((x) => x.fanouts === n).map((x) => x[k]));
    return {
      subscribers,
      channels: channels.length,
      captionsPerRun: captions,
      window,
      runs,
      ratio: Math.round((best(2, 'deliveriesPerSec') / Math.max(1, best(1, 'deliveriesPerSec'))) * 100) / 100,
      cpuRatio: Math.round((best(2, 'perFanoutCpuSecond') / Math.max(1, best(1, 'perFanoutCpuSecond'))) * 100) / 100,
    };
  } finally {
    await other.stop();
    await sys.stop();
    await dropSystem(sys);
  }
}

type Row = [scenario: string, metric: string, castlog: string, baseline: string, ratio: string, target: string];

/** The results table's rows and notes for this scenario. */
export function twoFanoutsReport(t: TwoFanoutsResult): { rows: Row[]; notes: string[] } {
  const best = (n: 1 | 2) => t.runs.filter((r) => r.fanouts === n).reduce((a, b) => (b.deliveriesPerSec > a.deliveriesPerSec ? b : a));
  const one = best(1);
  const two = best(2);
  const ok = t.runs.every((r) => r.verified);
  const rows: Row[] = [
    [
      `11 two fanouts, ${fmt(t.subscribers)} subs split, ${t.channels} ch`,
      'every caption to every subscriber (count, no gap/repeat)',
      ok ? 'yes' : 'NO',
      `${t.runs.length} runs x ${fmt(t.captionsPerRun)} captions`,
      '',
      `all: ${ok ? 'MET' : 'MISSED'}`,
    ],
    ['', 'deliveries/s', fmt(two.deliveriesPerSec), `one fanout ${fmt(one.deliveriesPerSec)}`, `${t.ratio.toFixed(2)}x`, ''],
    [
      '',
      'deliveries per fanout CPU-second',
      fmt(two.perFanoutCpuSecond),
      `one fanout ${fmt(one.perFanoutCpuSecond)}`,
      `${t.cpuRatio.toFixed(2)}x`,
      '',
    ],
    ['', 'deliveries per fanout (two-fanout run)', two.perFanout.map((n) => fmt(n)).join(' + '), '', '', ''],
  ];
  const notes = t.runs.map(
    (r) =>
      `twoFanouts ${r.fanouts} fanout(s): ${fmt(r.deliveriesPerSec)} deliveries/s; CPU ${Object.entries(r.cpu)
        .map(([k, v]) => `${k} ${v}%`)
        .join(', ')}${r.verified ? '' : `; PROBLEMS: ${r.problems.join('; ')}`}`,
  );
  return { rows, notes };
}
