// Scenario 3: fanout deliveries/s, the castlog fanout (Hub + uWS server) next to a plain `ws`
// server: same client population, same messages, same flow control, same run. Both servers and
// both client populations stay up for the whole scenario, and the measured runs alternate
// between them (castlog, ws, ws, castlog, ...), so load from elsewhere on the machine falls on
// both alike; each figure is the best of its rounds.
//
// Shapes: how many captions each channel gets per round (per hub.onRecords call per partition).
// With 1, every client gets one message per round, so a server makes one socket write per
// message; with 4, four messages share a write. Live traffic at 2k fragments/s over 100 channels
// is the first shape; a burst (catching up after a stall) is the second.
import type { ChildProcess } from 'node:child_process';
import { channelNames, channelsOf, CpuMeter, forkBench, knob, nextMessage, now, send, sleep, stopChild, type Msg } from './common.ts';

type Kind = 'castlog' | 'ws' | 'uws';

export interface FanoutRun {
  server: Kind;
  perChannel: number;
  deliveries: number;
  seconds: number;
  deliveriesPerSec: number;
  recordsPerSec: number;
  /** Deliveries per CPU-second of the server process: less sensitive to other load than the rate. */
  perServerCpuSecond: number;
  verified: boolean;
  problems: string[];
  cpu: Record<string, number>;
}

export interface FanoutShape {
  /** Channels, and channels each client subscribes to (the layout). */
  channels: number;
  channelsPerClient: number;
  perChannel: number;
  castlog: FanoutRun;
  ws: FanoutRun;
  /** Bare uWS pub/sub, the floor of what this harness delivers. */
  uws?: FanoutRun;
  ratio: number;
  cpuEfficiencyRatio: number;
  /** castlog / bare uWS, deliveries per server CPU-second (best of each). */
  uwsCpuEfficiencyRatio?: number;
  runs: FanoutRun[];
}

export interface FanoutResult {
  clients: number;
  channels: number;
  clientKind: string;
  secondsPerRun: number;
  rounds: number;
  shapes: FanoutShape[];
}

interface Side {
  kind: Kind;
  server: ChildProcess;
  clients: ChildProcess;
  received: number;
  snapshot: { perClient: number[]; fed: Record<string, number> };
}

async function startSide(kind: Kind, clients: number, channels: string[], clientMode: 'raw' | 'ws', perClient: number): Promise<Side> {
  const server = forkBench('./fanout-server.ts', {}, process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=.castlog/prof'] : []);
  const c = forkBench('./ws-clients.ts');
  const side: Side = { kind, server, clients: c, received: 0, snapshot: { perClient: Array(clients).fill(0), fed: {} } };
  send(server, { type: 'start', mode: kind, channels, maxBackpressure: 1024 * 1024, history: 50_000 });
  const { port } = await nextMessage(server, 'listening', 60_000);
  c.on('message', (m: Msg) => {
    if (m.type !== 'progress') return;
    side.received = m.received as number;
    send(server, { type: 'progress', received: side.received });
  });
  const ready = nextMessage(c, 'ready', 180_000);
  send(c, {
    type: 'start',
    url: `ws://127.0.0.1:${port}/v1/live`,
    clients,
    base: 0,
    channels,
    mode: clientMode,
    measureFrom: Number.MAX_SAFE_INTEGER,
    progressMs: 5,
    channelsPerClient: perClient,
  });
  const r = await ready;
  if (r.subscribed < r.subscriptions) throw new Error(`${kind}: only ${r.subscribed} of ${r.subscriptions} subscriptions confirmed`);
  return side;
}

async function runOnce(
  side: Side,
  channels: string[],
  opts: { durationMs: number; perChannel: number; window: number },
  perClient: number,
): Promise<FanoutRun> {
  const problems: string[] = [];
  const meter = new CpuMeter(() => ({ server: side.server.pid, clients: side.clients.pid }));
  const before = side.received;
  meter.begin();
  const t0 = now();
  send(side.server, { type: 'run', ...opts });
  const fed = await nextMessage(side.server, 'fed', opts.durationMs + 60_000);
  const deadline = Date.now() + 20_000;
  while (side.received < fed.sent && Date.now() < deadline) await sleep(2);
  const t1 = now();
  const cpu = meter.end();
  if (side.received < fed.sent) problems.push(`only ${side.received} of ${fed.sent} sent deliveries arrived`);
  // Every client must have got exactly the captions of its channel fed in this run.
  send(side.clients, { type: 'snapshot' });
  const snap = await nextMessage(side.clients, 'snapshot', 30_000);
  const fedNow = fed.perChannel as Record<string, number>;
  let wrong = 0;
  let delivered = 0;
  const counts = snap.perClient as number[];
  counts.forEach((count, i) => {
    const fedToIt = channelsOf(channels, i, perClient).reduce((n, ch) => n + (fedNow[ch] ?? 0) - (side.snapshot.fed[ch] ?? 0), 0);
    const got = count - (side.snapshot.perClient[i] ?? 0);
    delivered += got;
    if (got !== fedToIt) wrong++;
  });
  side.snapshot = { perClient: counts, fed: fedNow };
  if (wrong) problems.push(`${wrong} clients did not receive exactly their channel's captions`);
  if (delivered !== side.received - before) problems.push(`clients counted ${delivered}, progress said ${side.received - before}`);
  if (snap.closedUnexpectedly) problems.push(`${snap.closedUnexpectedly} clients were closed by the server`);
  if (fed.slowClosed) problems.push(`${fed.slowClosed} clients closed as slow consumers`);
  const seconds = (t1 - t0) / 1000;
  const serverCpuSeconds = ((cpu.server ?? 0) / 100) * seconds;
  return {
    server: side.kind,
    perChannel: opts.perChannel,
    deliveries: delivered,
    seconds: Math.round(seconds * 1000) / 1000,
    deliveriesPerSec: Math.round(delivered / seconds),
    recordsPerSec: Math.round(fed.records / seconds),
    perServerCpuSecond: serverCpuSeconds > 0 ? Math.round(delivered / serverCpuSeconds) : 0,
    verified: problems.length === 0,
    problems,
    cpu,
  };
}

const best = (runs: FanoutRun[]): FanoutRun => runs.reduce((a, b) => (b.deliveriesPerSec > a.deliveriesPerSec ? b : a));

export async function fanoutBench(log: (s: string) => void): Promise<FanoutResult> {
  const clients = knob('FANOUT_CLIENTS', 10_000, 2_000);
  const defaultChannels = knob('FANOUT_CHANNELS', 100);
  const durationMs = knob('FANOUT_SECONDS', 4, 2) * 1000;
  const rounds = knob('FANOUT_ROUNDS', 2, 1);
  const window = knob('FANOUT_WINDOW', 200_000, 100_000);
  const shapes = (process.env.BENCH_FANOUT_SHAPES ?? '1,4')
    .split(',')
    .map(Number)
    .filter((n) => n > 0);
  const layouts = (process.env.BENCH_FANOUT_LAYOUTS ?? `${defaultChannels}x1:${shapes.join(',')};1000x1:1;${defaultChannels}x4:1`)
    .split(';')
    .map((l) => {
      const [layout, list] = l.split(':');
      const [channels, perClient] = layout!.split('x').map(Number);
      return { channels: channels!, perClient: perClient ?? 1, shapes: (list ?? '1').split(',').map(Number) };
    });
  const clientMode = process.env.BENCH_FANOUT_CLIENT === 'ws' ? 'ws' : 'raw';
  const out: FanoutShape[] = [];
  for (const layout of layouts) {
    const channels = channelNames(layout.channels);
    log(
      `fanout: ${clients} clients on ${channels.length} channels (${layout.perClient} per client) per server; ` +
        `shapes ${layout.shapes.join(', ')} caption(s) per channel per round; ${rounds} round(s) of ${durationMs / 1000}s each`,
    );
    const sides: Side[] = [];
    try {
      for (const kind of ['castlog', 'ws', 'uws'] as const)
        sides.push(await startSide(kind, clients, channels, clientMode, layout.perClient));
      log('fanout: every server has all its clients subscribed');
      for (const perChannel of layout.shapes) {
        const runs: FanoutRun[] = [];
        for (let r = 0; r < rounds; r++) {
          for (const side of r % 2 ? [...sides].reverse() : sides) {
            const run = await runOnce(side, channels, { durationMs, perChannel, window }, layout.perClient);
            runs.push(run);
            log(
              `fanout: ${layout.channels}x${layout.perClient} ${perChannel}/channel/round ${side.kind}: ` +
                `${run.deliveriesPerSec.toLocaleString()} deliveries/s, ${run.perServerCpuSecond.toLocaleString()} per server CPU-s ` +
                `(server ${run.cpu.server}%, clients ${run.cpu.clients}%, other ${run.cpu.other}%)` +
                `${run.verified ? '' : ` PROBLEMS: ${run.problems.join('; ')}`}`,
            );
          }
        }
        const c = best(runs.filter((x) => x.server === 'castlog'));
        const w = best(runs.filter((x) => x.server === 'ws'));
        const eff = (k: Kind) => Math.max(...runs.filter((x) => x.server === k).map((x) => x.perServerCpuSecond));
        out.push({
          channels: layout.channels,
          channelsPerClient: layout.perClient,
          perChannel,
          castlog: c,
          ws: w,
          uws: best(runs.filter((x) => x.server === 'uws')),
          uwsCpuEfficiencyRatio: Math.round((eff('castlog') / Math.max(1, eff('uws'))) * 100) / 100,
          ratio: Math.round((c.deliveriesPerSec / Math.max(1, w.deliveriesPerSec)) * 100) / 100,
          cpuEfficiencyRatio: Math.round((eff('castlog') / Math.max(1, eff('ws'))) * 100) / 100,
          runs,
        });
      }
    } finally {
      for (const s of sides) send(s.server, { type: 'stop' });
      await Promise.all(sides.flatMap((s) => [stopChild(s.server), stopChild(s.clients)]));
    }
  }
  return {
    clients,
    channels: defaultChannels,
    clientKind: clientMode === 'raw' ? 'raw RFC 6455 frame-counting clients' : '`ws` package clients',
    secondsPerRun: durationMs / 1000,
    rounds,
    shapes: out,
  };
}
