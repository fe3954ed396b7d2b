// Scenario: stream-limit decisions. 1,000 users, an open-loop load of 500 requests/s spread over
// them (each request activates a stream for a random user, or deactivates one of theirs when they
// already watch their limit), through the real api with the relay and projector running.
// Baseline in the same run: the same open-loop rate against GET /healthz on the same api (the
// HTTP floor), so the ratio shows what deciding and appending adds. Requests go over a bounded
// pool of connections (BENCH_ACTIVATION_CONNECTIONS; BENCH_ACTIVATION_PIPELINE=0 leaves the relay
// and projector out); a request the network fails is counted
// under "network error", never the end of the run.
import { System, waitFor } from '../support/system.ts';
import { CpuMeter, PooledHttp, histogram, kafkaPid, knob, latency, now, sleep, startApp, type Latency } from './common.ts';
import { dropSystem } from './ingest.ts';

export interface ActivationsResult {
  users: number;
  rate: number;
  connections: number;
  /** Whether the relay and projector ran alongside the api. */
  pipeline: boolean;
  seconds: number;
  requests: number;
  achievedPerSec: number;
  statuses: Record<string, number>;
  /** The first network error, when any request had one. */
  networkError?: string;
  activate: Latency;
  all: Latency;
  healthFloor: Latency;
  /** % of one core per process over the decisions, and the machine's (out of cores × 100). */
  cpu: Record<string, number>;
  /** The machine's busy CPU per decision, µs: what a decision costs whatever else the day runs. */
  machineCpuUsPerDecision: number;
  ratioP99ToFloor: number;
  targetP99Ms: number;
}

/** Sends `fire` at a fixed rate whatever the answers take; `fire` must not reject. */
async function openLoop(rate: number, seconds: number, fire: () => Promise<void>): Promise<number> {
  const total = Math.round(rate * seconds);
  const t0 = now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - now();
    if (wait > 1) await sleep(wait);
    inFlight.push(fire());
  }
  await Promise.all(inFlight);
  return (now() - t0) / 1000;
}

export async function activationsBench(log: (s: string) => void): Promise<ActivationsResult> {
  const users = knob('ACTIVATION_USERS', 1000, 200);
  const rate = knob('ACTIVATION_RATE', 500);
  const seconds = knob('ACTIVATION_SECONDS', 20, 5);
  const connections = knob('ACTIVATION_CONNECTIONS', 128);
  // 0: the api alone, without the relay and projector that share the machine (what they cost).
  const pipeline = knob('ACTIVATION_PIPELINE', 1) > 0;
  const sys = await System.create({ STREAM_LIMIT: '3' });
  const http = new PooledHttp(sys.api, connections);
  try {
    await Promise.all([startApp(sys, 'api'), ...(pipeline ? [startApp(sys, 'relay'), startApp(sys, 'projector')] : [])]);
    log(`activations: issuing ${users} user ids and ${users * 2} stream ids`);
    // An id the api could not issue at once (a 503 while it warms up) is asked for again.
    const issue = async (path: string, field: string): Promise<string> => {
      for (let attempt = 1; ; attempt++) {
        const r = await http.request('GET', path).catch((err: unknown) => ({ status: 0, body: String(err) }));
        if (r.status === 200) return (JSON.parse(r.body) as Record<string, string>)[field]!;
        if (attempt >= 20) throw new Error(`GET ${path}: ${r.status} ${r.body}`);
        await sleep(100 * attempt);
      }
    };
    const userIds: string[] = [];
    const streamIds: string[] = [];
    for (let i = 0; i < users; i += 50) {
      userIds.push(...(await Promise.all(Array.from({ length: Math.min(50, users - i) }, () => issue('/users/newId', 'userId')))));
      streamIds.push(
        ...(await Promise.all(Array.from({ length: Math.min(100, users * 2 - i * 2) }, () => issue('/streams/newId', 'streamId')))),
      );
    }
    const active = new Map<string, string[]>(userIds.map((u) => [u, []]));
    const statuses: Record<string, number> = {};
    let networkError: string | undefined;
    const hActivate = histogram();
    const hAll = histogram();
    const fire = async () => {
      const user = userIds[Math.floor(Math.random() * userIds.length)]!;
      const mine = active.get(user)!;
      const deactivate = mine.length >= 3;
      const stream = deactivate ? mine.shift()! : streamIds[Math.floor(Math.random() * streamIds.length)]!;
      const t = now();
      let status: number | 'network error';
      try {
        status = (await http.request('PATCH', `/streams/${stream}/${deactivate ? 'deactivate' : 'activate'}`, { 'x-userid': user })).status;
      } catch (err) {
        status = 'network error';
        networkError ??= String(err);
        if (deactivate) mine.unshift(stream); // not deactivated, as far as we know
      }
      const us = Math.round((now() - t) * 1000);
      hAll.recordValue(us);
      if (!deactivate) {
        hActivate.recordValue(us);
        if (status === 200 && !mine.includes(stream)) mine.push(stream);
      }
      statuses[status] = (statuses[status] ?? 0) + 1;
    };
    const health = async (h?: ReturnType<typeof histogram>) => {
      const t = now();
      try {
        await http.request('GET', '/healthz');
      } catch (err) {
        networkError ??= String(err);
        statuses['healthz network error'] = (statuses['healthz network error'] ?? 0) + 1;
      }
      h?.recordValue(Math.round((now() - t) * 1000));
    };
    // A short warm-up, not measured.
    await openLoop(rate, 2, () => health());
    log(`activations: ${rate}/s for ${seconds}s over ${users} users`);
    const kafka = kafkaPid();
    const meter = new CpuMeter(() => ({
      api: sys.procs.get('api')?.pid,
      relay: sys.procs.get('relay')?.pid,
      projector: sys.procs.get('projector')?.pid,
      kafka,
      bench: process.pid,
    }));
    meter.begin();
    const took = await openLoop(rate, seconds, fire);
    const cpu = meter.end();
    log('activations: HTTP floor (GET /healthz) at the same rate');
    const hFloor = histogram();
    await openLoop(rate, Math.min(seconds, 10), () => health(hFloor));
    // Every decision reached Kafka through the relay.
    if (pipeline) await waitFor('relay', async () => (await sys.log.offsets('streams')).reduce((n, o) => n + o.high, 0) > 0, 30_000);
    const all = latency(hAll);
    const floor = latency(hFloor);
    return {
      users,
      rate,
      connections,
      pipeline,
      seconds,
      requests: hAll.totalCount,
      achievedPerSec: Math.round(hAll.totalCount / took),
      statuses,
      ...(networkError ? { networkError } : {}),
      activate: latency(hActivate),
      all,
      healthFloor: floor,
      cpu,
      machineCpuUsPerDecision: Math.round(((cpu.machine! / 100) * took * 1e6) / Math.max(1, hAll.totalCount)),
      ratioP99ToFloor: Math.round((all.p99 / Math.max(floor.p99, 0.001)) * 100) / 100,
      targetP99Ms: 10,
    };
  } finally {
    http.close();
    await sys.stop();
    await dropSystem(sys);
  }
}
