// KAFKA_CLUSTER_SIZE on the one-broker cluster: the operator's word on the cluster's size is what
// new topics are made for, so a first start that sees fewer brokers waits (and says why) instead of
// making topics with fewer copies for good; topics that exist are used whoever is away, their
// shortfall against the declared size reported.
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterIncomplete, EventLog, TopicMissing } from '../../infra/kafka/index.ts';
import { createLogger } from '../../infra/logger.ts';
import { TOPICS, type TopicName } from '../../schemas/catalog.ts';
import { testName } from '../support/test-data.ts';

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',');
const logs: EventLog[] = [];
/** A log of `prefix`'s topics, told the cluster's size as KAFKA_CLUSTER_SIZE would tell it. */
const logFor = (prefix: string, clusterSize?: number) => {
  const log = new EventLog(brokers, prefix, createLogger('test', 'silent'), { clusterSize });
  logs.push(log);
  return log;
};
const catalog = Object.keys(TOPICS) as TopicName[];

afterEach(async () => {
  for (const log of logs.splice(0)) {
    await log.deleteTopics(10_000).catch(() => undefined);
    await log.close();
  }
});

describe('topics made for the cluster size the operator declares', () => {
  it('makes no topic while fewer brokers answer than a declared cluster needs copies, and names them', async () => {
    const log = logFor(`${testName('declared')}.`, 3);
    const err = await log.ensureTopics().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ClusterIncomplete);
    const incomplete = err as ClusterIncomplete;
    expect({ listed: incomplete.listed, declared: incomplete.declared, copies: incomplete.copies }).toEqual({
      listed: 1,
      declared: 3,
      copies: 3,
    });
    expect(incomplete.topics.sort()).toEqual(catalog.map((t) => log.topicName(t)).sort());
    expect(incomplete.message).toMatch(/lists 1 of the 3 brokers KAFKA_CLUSTER_SIZE declares/);
    for (const t of catalog) await expect(log.offsets(t), t).rejects.toBeInstanceOf(TopicMissing);
  });

  it('uses topics that exist though brokers are away, and reports them short of the declared size', async () => {
    const prefix = `${testName('declared')}.`;
    const first = logFor(prefix);
    await first.ensureTopics();
    expect(first.replicationShortfalls).toEqual([]);
    const log = logFor(prefix, 3);
    await log.ensureTopics();
    const physical = catalog.map((t) => log.topicName(t));
    expect(log.replicationShortfalls.sort()).toEqual(
      [
        ...physical.map((t) => `${t}: 1 replicas, the catalog asks 3`),
        ...physical.map((t) => `${t}: min.insync.replicas 1, the catalog asks 2`),
      ].sort(),
    );
    // Still a working log.
    const [at] = await log.append([{ type: 'UserIdIssued', key: 'u-declared', source: 'test', data: { userId: 'u-declared', at: 1 } }]);
    expect(at!.offset).toBeGreaterThanOrEqual(0);
  });

  it('makes topics at once when the declared size is what answers', async () => {
    const log = logFor(`${testName('declared')}.`, 1);
    await log.ensureTopics();
    expect(log.replicationShortfalls).toEqual([]);
    for (const t of catalog) expect(await log.offsets(t), t).toHaveLength(TOPICS[t].partitions);
  });
});
