// The topics of the catalog on the cluster: creating what is missing, and reading partition ends.
import kafkajs, { type Admin, type Kafka } from 'kafkajs';
import { replicationFor, TOPICS, type Replication, type TopicName } from '../../schemas/catalog.ts';
import { retry } from '../retry.ts';

// A CommonJS export Node cannot name statically.
const { ConfigResourceTypes } = kafkajs;
import type { GroupMember, TopicNames } from './types.ts';

export interface PartitionReplicas {
  partition: number;
  leader: number;
  replicas: number[];
  isr: number[];
}

/** The cluster has no such topic: a log not made yet (every castlog process makes the topics as it starts), or
 *  KAFKA_BROKERS / TOPIC_PREFIX pointing somewhere other than the log this database was built from. */
export class TopicMissing extends Error {
  constructor(readonly topic: string) {
    super(`topic ${topic} does not exist on this Kafka: check KAFKA_BROKERS and TOPIC_PREFIX, or start castlog once (it makes its topics)`);
  }
}

/** Fewer brokers answer than the copies a new topic needs: the operator declared more (KAFKA_CLUSTER_SIZE), or
 *  none is listed at all (a broker on its way out lists none). */
export class ClusterIncomplete extends Error {
  constructor(
    readonly listed: number,
    readonly declared: number | undefined,
    readonly copies: number,
    readonly topics: string[],
  ) {
    const cluster = declared === undefined ? `${listed} brokers` : `${listed} of the ${declared} brokers KAFKA_CLUSTER_SIZE declares`;
    super(
      `the cluster lists ${cluster}, and each new topic needs ${copies} copies: waiting for the others before making ${topics.join(', ')}`,
    );
  }
}

/** kafkajs's "This server does not host this topic-partition", also after its retries gave up. */
function isUnknownTopic(err: unknown): boolean {
  const e = err as { type?: string; cause?: { type?: string } } | undefined;
  return e?.type === 'UNKNOWN_TOPIC_OR_PARTITION' || e?.cause?.type === 'UNKNOWN_TOPIC_OR_PARTITION';
}

/** How many answers `clusterSize` asks for. */
export const SIZE_ANSWERS = 10;

/**
 * How many brokers the cluster has: the most that any of several answers lists. kafkajs asks a
 * broker picked at random each time, and a broker that has just started may not list the others
 * yet: a topic made on its word alone gets fewer copies than the cluster can hold, for good. Asked
 * at once, as a process starts: one round trip's wait.
 */
export async function clusterSize(listed: () => Promise<number>, answers = SIZE_ANSWERS): Promise<number> {
  return Math.max(...(await Promise.all(Array.from({ length: answers }, listed))));
}

export class Topics {
  private adminClient: Admin | undefined;
  private adminReady: Promise<Admin> | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly names: TopicNames,
  ) {}

  /** One admin client, connected once however many callers ask at the same moment. */
  admin(): Promise<Admin> {
    if (!this.adminReady) {
      const admin = this.kafka.admin({ retry: { retries: 1, initialRetryTime: 100 } });
      this.adminReady = admin.connect().then(
        () => (this.adminClient = admin),
        (e) => {
          this.adminReady = undefined;
          throw e;
        },
      );
    }
    return this.adminReady;
  }

  /** Drops the admin client: a refused or broken connection may be cached in it. */
  forgetAdmin(): void {
    const admin = this.adminClient;
    if (!admin) return;
    this.adminClient = undefined;
    this.adminReady = undefined;
    void admin.disconnect().catch(() => undefined);
  }

  /**
   * Creates every topic of the catalog that does not exist yet, with the replication the catalog
   * asks of a cluster this size, and says which existing topics have less (a topic made on a
   * smaller cluster, or by hand): those are used, but the caller must report them.
   *
   * `declared` is the size the operator says the cluster has (KAFKA_CLUSTER_SIZE): counted when
   * more than the brokers listed, so a first start while a broker is away waits for it
   * (ClusterIncomplete) rather than make topics with fewer copies for good. Topics that exist
   * already are used whoever is away.
   */
  async ensure(declared?: number): Promise<string[]> {
    const admin = await this.admin();
    const listed = await clusterSize(async () => (await admin.describeCluster()).brokers.length);
    const need = replicationFor(Math.max(listed, declared ?? 0));
    const existing = new Set(await admin.listTopics());
    const missing = Object.entries(TOPICS)
      .filter(([name]) => !existing.has(this.names.physical(name as TopicName)))
      .map(([name, spec]) => ({
        topic: this.names.physical(name as TopicName),
        numPartitions: spec.partitions,
        replicationFactor: need.replicationFactor,
        configEntries: [{ name: 'min.insync.replicas', value: String(need.minInsyncReplicas) }],
      }));
    if (missing.length && listed < need.replicationFactor) {
      throw new ClusterIncomplete(
        listed,
        declared,
        need.replicationFactor,
        missing.map((m) => m.topic),
      );
    }
    if (missing.length) {
      // kafkajs's own waitForLeaders gives up when metadata briefly says "unknown topic": wait below instead.
      await admin.createTopics({ topics: missing, waitForLeaders: false }).catch((e: { type?: string }) => {
        if (e.type !== 'TOPIC_ALREADY_EXISTS') throw e; // another process made them first
      });
      // Leaders are elected, but a broker may not serve the new partitions for a moment: return only
      // once every new topic answers, so callers never see "does not host this topic-partition".
      for (const { topic } of missing) await retry(() => admin.fetchTopicOffsets(topic), { attempts: 50, delayMs: 100 });
    }
    return this.shortfalls(admin, need);
  }

  /** The catalog's topics that have fewer replicas or a lower min.insync.replicas than `need`. */
  private async shortfalls(admin: Admin, need: Replication): Promise<string[]> {
    const topics = Object.keys(TOPICS).map((name) => this.names.physical(name as TopicName));
    const { topics: metadata } = await admin.fetchTopicMetadata({ topics });
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: topics.map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: ['min.insync.replicas'] })),
    });
    const found: string[] = [];
    for (const t of metadata) {
      const replicas = Math.min(...t.partitions.map((p) => p.replicas.length));
      if (replicas < need.replicationFactor) found.push(`${t.name}: ${replicas} replicas, the catalog asks ${need.replicationFactor}`);
    }
    for (const r of resources) {
      const minIsr = Number(r.configEntries.find((c) => c.configName === 'min.insync.replicas')?.configValue ?? 1);
      if (minIsr < need.minInsyncReplicas) {
        found.push(`${r.resourceName}: min.insync.replicas ${minIsr}, the catalog asks ${need.minInsyncReplicas}`);
      }
    }
    return found;
  }

  /** [low, high) offsets of every partition of a topic; TopicMissing when the cluster has no such topic. */
  async offsets(topic: TopicName): Promise<{ partition: number; low: number; high: number }[]> {
    const admin = await this.admin();
    const physical = this.names.physical(topic);
    const rows = await admin.fetchTopicOffsets(physical).catch((err: unknown) => {
      throw isUnknownTopic(err) ? new TopicMissing(physical) : err;
    });
    return rows
      .map((r) => ({ partition: r.partition, low: Number(r.low), high: Number(r.high) }))
      .sort((a, b) => a.partition - b.partition);
  }

  /** Per partition, the first offset whose timestamp is at or after `time` (the end if none). */
  async offsetsAt(topic: TopicName, time: number): Promise<Map<number, number>> {
    const admin = await this.admin();
    const rows = await admin.fetchTopicOffsetsByTimestamp(this.names.physical(topic), time);
    const ends = await this.offsets(topic);
    return new Map(
      rows.map((r) => [r.partition, Number(r.offset) < 0 ? ends.find((e) => e.partition === r.partition)!.high : Number(r.offset)]),
    );
  }

  /** How many brokers the cluster lists now (a broker listening is listed once the controller has it). */
  async brokerCount(): Promise<number> {
    return (await (await this.admin()).describeCluster()).brokers.length;
  }

  /** Each partition's leader, replicas and in-sync replicas (broker ids; leader -1: none). */
  async replicas(topic: TopicName): Promise<PartitionReplicas[]> {
    const admin = await this.admin();
    const { topics } = await admin.fetchTopicMetadata({ topics: [this.names.physical(topic)] });
    return (topics[0]?.partitions ?? [])
      .map((p) => ({ partition: p.partitionId, leader: p.leader, replicas: p.replicas, isr: p.isr }))
      .sort((a, b) => a.partition - b.partition);
  }

  /** Offsets a consumer group has committed, per partition of a topic (-1: none). */
  async committed(groupId: string, topic: TopicName): Promise<Map<number, number>> {
    const admin = await this.admin();
    const [offsets] = await admin.fetchOffsets({ groupId: this.names.prefix + groupId, topics: [this.names.physical(topic)] });
    return new Map((offsets?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  }

  /** The members of every consumer group whose name (without the prefix) starts with `start`, by that name. */
  async groupMembers(start: string): Promise<Map<string, GroupMember[]>> {
    const admin = await this.admin();
    const named = this.names.prefix + start;
    const ids = (await admin.listGroups()).groups.map((g) => g.groupId).filter((id) => id.startsWith(named));
    if (!ids.length) return new Map();
    const { groups } = await admin.describeGroups(ids);
    return new Map(
      groups.map((g) => [
        g.groupId.slice(this.names.prefix.length),
        g.members.map((m) => ({ clientId: m.clientId, host: m.clientHost.replace(/^\//, '') })),
      ]),
    );
  }

  /** Deletes every topic of this prefix (a test or bench run cleaning up after itself). */
  async deleteAll(timeoutMs: number): Promise<number> {
    const admin = await this.admin();
    const mine = (await admin.listTopics()).filter((t) => t.startsWith(this.names.prefix));
    if (mine.length) await admin.deleteTopics({ topics: mine, timeout: timeoutMs });
    return mine.length;
  }

  async close(): Promise<void> {
    await this.adminClient?.disconnect();
  }
}
