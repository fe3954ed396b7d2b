// Scenario: stream-limit decisions. 1,000 users, an open-loop load of 500 requests/s spread over
// them (each request activates a stream for a random user, or deactivates one of theirs when they
// already watch their limit), through the real api with the relay and projector running.
// Baseline in the same run: the same open-loop rate against GET /healthz on the same api (the
// HTTP floor), so the ratio shows what deciding and appending adds.
import { System, waitFor } from '../support/system.ts';
import { histogram, knob, latency, now, sleep, startApp, type Latency } from './common.ts';
import { dropSystem } from './ingest.ts';

export interface ActivationsResult {
  users: number;
  rate: number;
  seconds: number;
  requests: number;
  achievedPerSec: number;
  statuses: Record<string, number>;
  activate: Latency;
  all: Latency;
  healthFloor: Latency;
  ratioP99ToFloor: number;
  targetP99Ms: number;
}

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
  const sys = await System.create({ STREAM_LIMIT: '3' });
  try {
    await Promise.all([startApp(sys, 'api'), startApp(sys, 'relay'), startApp(sys, 'projector')]);
    log(`activations: issuing ${users} user ids and ${users * 2} stream ids`);
    const issue = async (path: string, field: string) => ((await (await fetch(sys.api + path)).json()) as Record<string, string>)[field]!;
    const userIds: string[] = [];
    const streamIds: string[] = [];
    for (let i = 0; i < users; i += 50) {
      userIds.push(...(await Promise.all(Array.from({ length: Math.min(50, users - i) }, () => issue('/users/newId', 'userId')))));
      streamIds.push(...(await Promise.all(Array.from({ length: Math.min(100, users * 2 - i * 2) }, () => issue('/streams/newId', 'streamId')))));
    }
    const active = new Map<string, string[]>(userIds.map((u) => [u, []]));
    const statuses: Record<string, number> = {};
    const hActivate = histogram();
    const hAll = histogram();
    const fire = async () => {
      const user = userIds[Math.floor(Math.random() * userIds.length)]!;
      const mine = active.get(user)!;
      const deactivate = mine.length >= 3;
      const stream = deactivate ? mine.shift()! : streamIds[Math.floor(Math.random() * streamIds.length)]!;
      const t = now();
      const r = await fetch(`${sys.api}/streams/${stream}/${deactivate ? 'deactivate' : 'activate'}`, { method: 'PATCH', headers: { 'x-userid': user } });
      await r.arrayBuffer();
      const us = Math.round((now() - t) * 1000);
      hAll.recordValue(us);
      if (!deactivate) {
        hActivate.recordValue(us);
        if (r.status === 200 && !mine.includes(stream)) mine.push(stream);
      }
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    };
    // A short warm-up, not measured.
    await openLoop(rate, 2, async () => void (await (await fetch(`${sys.api}/healthz`)).arrayBuffer()));
    log(`activations: ${rate}/s for ${seconds}s over ${users} users`);
    const took = await openLoop(rate, seconds, fire);
    log('activations: HTTP floor (GET /healthz) at the same rate');
    const hFloor = histogram();
    await openLoop(rate, Math.min(seconds, 10), async () => {
      const t = now();
      await (await fetch(`${sys.api}/healthz`)).arrayBuffer();
      hFloor.recordValue(Math.round((now() - t) * 1000));
    });
    // Every decision reached Kafka through the relay.
    await waitFor('relay', async () => (await sys.log.offsets('streams')).reduce((n, o) => n + o.high, 0) > 0, 30_000);
    const all = latency(hAll);
    const floor = latency(hFloor);
    return {
      users, rate, seconds,
      requests: hAll.totalCount,
      achievedPerSec: Math.round(hAll.totalCount / took),
      statuses,
      activate: latency(hActivate),
      all,
      healthFloor: floor,
      ratioP99ToFloor: Math.round((all.p99 / Math.max(floor.p99, 0.001)) * 100) / 100,
      targetP99Ms: 10,
    };
  } finally {
    await sys.stop();
    await dropSystem(sys);
  }
}
