// A replicated log under a broker crash: a three-node KRaft cluster of our own (the shared broker
// must never stop), a station streaming captions at a steady rate, and the broker leading the
// channel's partition killed with SIGKILL, then started again on its data. The catalog's
// replication (3 copies, min.insync.replicas 2, acks=all) must keep every acknowledged fragment;
// ingest may answer 503 while a new leader is elected (measured and printed), never lose or double.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterIncomplete, EventLog } from '../../infra/kafka/index.ts';
import { createLogger } from '../../infra/logger.ts';
import { sleep } from '../../infra/retry.ts';
import { startLocalKafka, type LocalKafka } from '../../infra/stack/kafka-local.ts';
import { STATE_DIR } from '../../infra/stack/ports.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { LiveClient, System, fragment, freePortRun, readTopic, waitFor } from '../support/system.ts';
import { testName } from '../support/test-data.ts';

const NODES = 3;
const CHANNEL = 'replicated.news';

const stateDirs = (base: number) => Array.from({ length: NODES }, (_, i) => join(STATE_DIR, `kafka-${base}-of-${NODES}-node-${i + 1}`));

let base: number;
let kafka: LocalKafka;
let sys: System;

beforeAll(async () => {
  base = await freePortRun(2 * NODES);
  for (const d of stateDirs(base)) rmSync(d, { recursive: true, force: true });
  kafka = await startLocalKafka(base, NODES);
  expect(kafka.nodes.length, 'a cluster of our own, not a broker already on that port').toBe(NODES);
  sys = await System.create({}, { kafkaBrokers: kafka.brokers });
  // One after another: three brokers starting already load a small machine.
  for (const p of ['api', 'projector', 'fanout'] as const) await sys.start(p);
}, 600_000);

afterAll(async () => {
  await sys?.stop();
  await kafka?.stop('SIGKILL');
  if (base) for (const d of stateDirs(base)) rmSync(d, { recursive: true, force: true });
});

interface Answer {
  sentAt: number;
  answeredAt: number;
  status: number;
}

describe('a replicated Kafka losing the leader of the captions partition', () => {
  it('loses and doubles nothing acknowledged; subscribers resume exactly; the broker rejoins the in-sync replicas', async () => {
    // The catalog's replication, applied at creation and reported as met.
    const before = await sys.log.replicas('captions');
    expect(before).toHaveLength(TOPICS.captions.partitions);
    for (const p of before) expect({ replicas: p.replicas.length, isr: p.isr.length }).toEqual({ replicas: NODES, isr: NODES });
    expect(sys.log.replicationShortfalls).toEqual([]);

    const partition = partitionFor(CHANNEL, TOPICS.captions.partitions);
    const key = await sys.stationKey();
    const steady = await LiveClient.connect(sys.live);
    steady.subscribe(CHANNEL);
    await steady.waitFor('subscribed', CHANNEL);
    let resumer = await LiveClient.connect(sys.live);
    resumer.subscribe(CHANNEL);
    await resumer.waitFor('subscribed', CHANNEL);

    // The station: one fragment after another at a steady pace, each sent again until acknowledged
    // (as a station does; a repeat of one that was written after all is dropped by readers).
    const acked = new Map<number, string>(); // seq -> position
    const answers: Answer[] = [];
    let streaming = true;
    const station = (async () => {
      let seq = 1;
      while (streaming) {
        const sentAt = performance.now();
        const r = await sys.postJson(CHANNEL, key, fragment(seq)).catch(() => ({ status: 0, body: undefined }));
        answers.push({ sentAt, answeredAt: performance.now(), status: r.status });
        if (r.status === 200) {
          for (const a of r.body.accepted as { seq: number; position: string }[]) acked.set(a.seq, a.position);
          seq++;
        }
        await sleep(20);
      }
    })();

    let seenBeforeClose: any[] = [];
    try {
      await waitFor('fragments acknowledged before the kill', () => acked.size >= 30, 120_000).catch((err) => {
        const statuses = answers.reduce<Record<number, number>>((n, a) => ({ ...n, [a.status]: (n[a.status] ?? 0) + 1 }), {});
        throw new Error(`${err.message}; answers by status: ${JSON.stringify(statuses)}; api: ${sys.said('api').slice(-2000)}`);
      });
      const leaderId = (await sys.log.replicas('captions')).find((p) => p.partition === partition)!.leader;
      const leader = kafka.nodes.find((n) => n.id === leaderId)!;
      const killedAt = performance.now();
      await leader.stop('SIGKILL');

      // One subscriber leaves during the outage and comes back with the last position it saw.
      await sleep(1000);
      seenBeforeClose = resumer.captions(CHANNEL);
      resumer.close();
      await waitFor('a new leader for the channel', async () => {
        const now = (await sys.log.replicas('captions')).find((p) => p.partition === partition)!;
        return now.leader !== -1 && now.leader !== leaderId;
      });
      const ackedAtElection = acked.size;
      await waitFor('fragments acknowledged under the new leader', () => acked.size >= ackedAtElection + 30, 60_000);
      resumer = await LiveClient.connect(sys.live);
      resumer.subscribe(CHANNEL, seenBeforeClose.at(-1)!.position);
      await resumer.waitFor('subscribed', CHANNEL);

      const restartAt = performance.now();
      await leader.start();
      const upAt = performance.now();
      const rejoined = await waitFor(
        `broker ${leaderId} back in every captions partition's in-sync replicas`,
        async () => (await sys.log.replicas('captions')).every((p) => p.isr.includes(leaderId)) && performance.now(),
        180_000,
        500,
      );
      const ackedAtRejoin = acked.size;
      await waitFor('fragments acknowledged after the rejoin', () => acked.size >= ackedAtRejoin + 30, 60_000);
      streaming = false;
      await station;

      const after = answers.filter((a) => a.sentAt >= killedAt);
      const unavailable = after.filter((a) => a.status === 503);
      const measured = {
        fragmentsAcknowledged: acked.size,
        ingest503Answers: unavailable.length,
        ingest503WindowMs: unavailable.length ? Math.round(unavailable.at(-1)!.answeredAt - unavailable[0]!.sentAt) : 0,
        killToFirst503Ms: unavailable.length ? Math.round(unavailable[0]!.answeredAt - killedAt) : null,
        slowestAnswerAfterKillMs: Math.round(Math.max(...after.map((a) => a.answeredAt - a.sentAt))),
        brokerStartMs: Math.round(upAt - restartAt),
        startToInSyncMs: Math.round(rejoined - upAt),
      };
      console.log(`replicated kafka, leader of captions/${partition} (broker ${leaderId}) killed, measured: ${JSON.stringify(measured)}`);
      // Every answer is an acknowledgement or a 503 (nothing written, send it again): nothing else.
      expect(answers.filter((a) => a.status !== 200 && a.status !== 503)).toEqual([]);
    } finally {
      streaming = false;
      await station;
    }

    const expected = Array.from({ length: acked.size }, (_, i) => i + 1);
    expect([...acked.keys()].sort((a, b) => a - b)).toEqual(expected);

    // Every acknowledged fragment is on the log where its answer said.
    const reader = await readTopic(sys.log, 'captions');
    try {
      const at = (position: string) => reader.records.find((r) => `${r.partition}:${r.offset}` === position);
      await waitFor(`${acked.size} acknowledged fragments on Kafka`, () => [...acked.values()].every((pos) => at(pos)), 60_000, 250);
      for (const [n, pos] of acked) expect((at(pos)!.event.data as { seq: number }).seq, `fragment ${n} at ${pos}`).toBe(n);
    } finally {
      await reader.stop();
    }

    // The read model holds each exactly once.
    const readModel = async () => (await sys.fragments(CHANNEL)).map((f) => f.seq);
    await waitFor('every fragment in the read model', async () => (await readModel()).length >= acked.size, 60_000, 250);
    expect(await readModel()).toEqual(expected);

    // Each subscriber saw each exactly once, in order: the one that stayed, and the one that left
    // during the outage and resumed from its last position.
    await steady.waitForCaptions(acked.size, CHANNEL, 60_000);
    await steady.barrier();
    expect(steady.captions(CHANNEL).map((m) => m.seq)).toEqual(expected);
    const rest = expected.length - seenBeforeClose.length;
    await resumer.waitForCaptions(rest, CHANNEL, 60_000);
    await resumer.barrier();
    expect([...seenBeforeClose, ...resumer.captions(CHANNEL)].map((m) => m.seq)).toEqual(expected);
    steady.close();
    resumer.close();
  }, 900_000);

  it('makes a first start wait for a broker that is away when KAFKA_CLUSTER_SIZE says the cluster has it', async () => {
    const [first, second] = [`${testName('undeclared')}.`, `${testName('declared')}.`];
    const logOf = (prefix: string, clusterSize?: number) =>
      new EventLog(kafka.brokers.split(','), prefix, createLogger('test', 'silent'), { clusterSize });
    // The third is the first's topics seen by a start told the cluster's size.
    const logs = [logOf(first), logOf(second, NODES), logOf(first, NODES)];
    const [undeclared, declared, undeclaredThenTold] = logs as [EventLog, EventLog, EventLog];
    const away = kafka.nodes.at(-1)!;
    try {
      await away.stop('SIGTERM');
      await waitFor('the cluster to list two brokers', async () => (await sys.log.brokerCount()) === NODES - 1, 60_000, 250);

      // Told nothing, a start makes its topics for the brokers it sees: two copies, for good.
      await undeclared.ensureTopics();
      expect(new Set((await undeclared.replicas('captions')).map((p) => p.replicas.length))).toEqual(new Set([NODES - 1]));

      // Told the cluster's size, it makes nothing and says why, until the broker is back.
      await expect(declared.ensureTopics()).rejects.toBeInstanceOf(ClusterIncomplete);
      await expect(declared.offsets('captions')).rejects.toThrow(/does not exist/);
      await away.start();
      await waitFor(
        'topics made once every broker answers',
        () =>
          declared.ensureTopics().then(
            () => true,
            () => false,
          ),
        180_000,
        500,
      );
      for (const topic of Object.keys(TOPICS) as (keyof typeof TOPICS)[]) {
        for (const p of await declared.replicas(topic)) expect(p.replicas.length, `${topic}/${p.partition}`).toBe(NODES);
      }
      expect(declared.replicationShortfalls).toEqual([]);
      // The start told nothing now reports its topics short of the size it is told.
      await undeclaredThenTold.ensureTopics();
      expect(undeclaredThenTold.replicationShortfalls).toContain(`${undeclared.topicName('captions')}: 2 replicas, the catalog asks 3`);
    } finally {
      if (!away.running) await away.start();
      for (const log of logs) {
        await log.deleteTopics(30_000).catch(() => undefined);
        await log.close();
      }
    }
  }, 600_000);
});
