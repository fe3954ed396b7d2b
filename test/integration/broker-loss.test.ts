// Kafka lost under a running system, as an operator sees it: a private single-node broker (the
// shared one must never stop) killed with SIGKILL under the api, fanout, projector, relay and
// worker. The README promises a 503 within a second, for ingest and for /readyz on every process;
// then the broker comes back on the same port and data, and the system recovers with no process
// restarted and nothing that was acknowledged lost.
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalKafka, type LocalKafka } from '../../infra/stack/kafka-local.ts';
import { STATE_DIR } from '../../infra/stack/ports.ts';
import { System, freePort, freePortRun, fragment, readTopic, waitFor, type ProcessName } from '../support/system.ts';

const PROCESSES: ProcessName[] = ['api', 'fanout', 'projector', 'relay', 'worker'];
// Each probe's fragment goes to a channel of its own: probes overlap, and two fragments of one
// station on one channel that reach the api out of order are, by design, one fragment and a repeat.
const channelOf = (n: number) => `outage.${n}`;

let kafkaPort: number;
let kafka: LocalKafka;
let sys: System;
const ports = {} as Record<ProcessName, number>;

async function stopKafka(k: LocalKafka | undefined): Promise<void> {
  const p = k?.process;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  await new Promise((r) => (p.once('exit', r), p.kill('SIGKILL')));
}

beforeAll(async () => {
  kafkaPort = await freePortRun(2); // the broker on p, its controller on p + 1
  rmSync(join(STATE_DIR, `kafka-${kafkaPort}`), { recursive: true, force: true });
  kafka = await startLocalKafka(kafkaPort);
  expect(kafka.process, 'a broker of our own, not one already on that port').toBeDefined();
  sys = await System.create({}, { kafkaBrokers: `127.0.0.1:${kafkaPort}` });
  const workerPort = await freePort();
  await Promise.all(PROCESSES.map((p) => sys.start(p, p === 'worker' ? { WORKER_PORT: String(workerPort) } : {})));
  Object.assign(ports, {
    api: sys.apiPort,
    fanout: sys.fanoutPort,
    projector: sys.projectorPort,
    relay: sys.relayPort,
    worker: workerPort,
  });
}, 180_000);

afterAll(async () => {
  await sys?.stop();
  await stopKafka(kafka);
  if (kafkaPort) rmSync(join(STATE_DIR, `kafka-${kafkaPort}`), { recursive: true, force: true });
});

interface Answer {
  sentAt: number;
  answeredAt: number;
  status: number;
}

/** Sends `probe` every `everyMs` whatever the previous answers take (a slow answer must not
 *  hide a fast one behind it), and keeps every answer. */
function everyFew<T extends Answer>(everyMs: number, probe: (sentAt: number) => Promise<T>) {
  const answers: T[] = [];
  const inFlight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    const p = probe(performance.now()).then((a) => void answers.push(a));
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }, everyMs);
  return {
    answers,
    stop: async () => {
      clearInterval(timer);
      await Promise.all(inFlight);
    },
  };
}

/** ms from `since` to the first answer with `status` to a request sent at or after `since`. */
function firstAnswer(answers: Answer[], since: number, status: number): number | undefined {
  const at = answers.filter((a) => a.sentAt >= since && a.status === status).map((a) => a.answeredAt);
  return at.length ? Math.round(Math.min(...at) - since) : undefined;
}

describe('the Kafka broker killed and started again', () => {
  it('ingest and every /readyz answer 503 within a second; all recover by themselves; nothing acknowledged is lost', async () => {
    const key = await sys.stationKey();
    let seq = 0;
    const acked = new Map<number, string>(); // seq -> position
    const ingest = everyFew(25, async (sentAt) => {
      const n = ++seq;
      const r = await sys.postJson(channelOf(n), key, fragment(n)).catch(() => ({ status: 0, body: undefined }));
      if (r.status === 200) for (const a of r.body.accepted as { seq: number; position: string }[]) acked.set(a.seq, a.position);
      return { sentAt, answeredAt: performance.now(), status: r.status, seq: n };
    });
    const readiness = Object.fromEntries(
      PROCESSES.map((p) => [
        p,
        everyFew(25, async (sentAt) => {
          const status = (await fetch(`http://127.0.0.1:${ports[p]}/readyz`).catch(() => undefined))?.status ?? 0;
          return { sentAt, answeredAt: performance.now(), status };
        }),
      ]),
    ) as Record<ProcessName, ReturnType<typeof everyFew<Answer>>>;
    const pids = Object.fromEntries(PROCESSES.map((p) => [p, sys.procs.get(p)!.pid]));

    try {
      await waitFor('fragments acknowledged before the kill', () => acked.size >= 20, 30_000);
      const killedAt = performance.now();
      await stopKafka(kafka);

      await waitFor(
        'ingest and every /readyz answering 503',
        () =>
          firstAnswer(ingest.answers, killedAt, 503) !== undefined &&
          PROCESSES.every((p) => firstAnswer(readiness[p].answers, killedAt, 503) !== undefined),
        10_000,
        25,
      );
      // Let the outage last a while: every request sent meanwhile is answered, and soon.
      await new Promise((r) => setTimeout(r, 2000));
      const restartAt = performance.now();
      kafka = await startLocalKafka(kafkaPort);
      const upAt = performance.now();
      await waitFor('ingest acknowledging again', () => firstAnswer(ingest.answers, upAt, 200) !== undefined, 60_000, 50);
      await waitFor(
        'every /readyz 200 again',
        () => PROCESSES.every((p) => firstAnswer(readiness[p].answers, upAt, 200) !== undefined),
        60_000,
        50,
      );
      const ackedBefore = acked.size;
      await waitFor('more fragments acknowledged after the restart', () => acked.size >= ackedBefore + 20, 30_000);

      const outage = ingest.answers.filter((a) => a.sentAt >= killedAt && a.sentAt < restartAt);
      const measured = {
        killToIngest503Ms: firstAnswer(ingest.answers, killedAt, 503)!,
        killToReadyz503Ms: Object.fromEntries(PROCESSES.map((p) => [p, firstAnswer(readiness[p].answers, killedAt, 503)!])),
        slowestIngestAnswerDuringOutageMs: Math.round(Math.max(...outage.map((a) => a.answeredAt - a.sentAt))),
        brokerStartMs: Math.round(upAt - restartAt),
        upToIngestAckMs: firstAnswer(ingest.answers, upAt, 200)!,
        upToReadyz200Ms: Object.fromEntries(PROCESSES.map((p) => [p, firstAnswer(readiness[p].answers, upAt, 200)!])),
      };
      console.log(`broker loss, measured: ${JSON.stringify(measured)}`);

      expect(measured.killToIngest503Ms).toBeLessThanOrEqual(1000);
      for (const p of PROCESSES) expect(measured.killToReadyz503Ms[p], `${p} /readyz`).toBeLessThanOrEqual(1000);
      // No request hangs on the dead broker: each is answered (a 503, nothing written) in time.
      expect(measured.slowestIngestAnswerDuringOutageMs).toBeLessThanOrEqual(1000);
      expect(outage.filter((a) => a.status !== 503 && a.status !== 200)).toEqual([]);
    } finally {
      await Promise.all([ingest.stop(), ...PROCESSES.map((p) => readiness[p].stop())]);
    }

    // Nothing was restarted to recover.
    for (const p of PROCESSES) expect(sys.procs.get(p)?.pid, p).toBe(pids[p]);
    for (const p of PROCESSES) expect(sys.procs.get(p)?.exitCode, p).toBe(null);

    // Every fragment acknowledged, before and after the outage, is on the log where its answer said.
    const reader = await readTopic(sys.log, 'captions');
    try {
      const at = (position: string) => reader.records.find((r) => `${r.partition}:${r.offset}` === position);
      await waitFor(`${acked.size} acknowledged fragments on Kafka`, () => [...acked.values()].every((pos) => at(pos)), 30_000, 200);
      for (const [n, pos] of acked) expect((at(pos)!.event.data as { seq: number }).seq, `fragment ${n} at ${pos}`).toBe(n);
    } finally {
      await reader.stop();
    }
    // And the projector, never restarted, has them all in the read model.
    const inReadModel = async () => {
      const rows = await sys.db.selectFrom('caption_fragments').select(['channel', 'seq']).where('channel', 'like', 'outage.%').execute();
      const stored = new Set(rows.filter((r) => r.channel === channelOf(r.seq)).map((r) => r.seq));
      return [...acked.keys()].filter((n) => !stored.has(n));
    };
    await waitFor('every acknowledged fragment in the read model', async () => (await inReadModel()).length === 0, 60_000, 250).catch(
      async (err) => {
        throw new Error(`${err.message}; missing: ${(await inReadModel()).join(', ')}`);
      },
    );
  }, 240_000);
});
