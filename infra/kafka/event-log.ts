// The log as castlog sees it: topics of the catalog, appends that resolve with positions once
// Kafka acknowledged them, decoded consumers, and whether Kafka answers at all.
import { Kafka, logLevel, type Consumer, type KafkaMessage } from 'kafkajs';
import { v4 as uuidv4 } from 'uuid';
import { AvroCodec } from '../../schemas/codec.ts';
import type { TopicName } from '../../schemas/catalog.ts';
import { newMeta } from '../../schemas/envelope.ts';
import type { Logger } from '../logger.ts';
import { decodeRecord, runConsumer, type RunningConsumer } from './consumer.ts';
import { BatchingProducer } from './producer.ts';
import { KafkaReachability } from './reachability.ts';
import { Topics, type PartitionReplicas } from './topics.ts';
import {
  TopicNames,
  type ConsumeOptions,
  type EncodedEvent,
  type GroupMember,
  type LogRecord,
  type NewEvent,
  type Position,
} from './types.ts';

export interface EventLogOptions {
  codec?: AvroCodec;
  /** How long an append may wait for Kafka's acknowledgement before it is reported as not
   *  acknowledged (an unreachable Kafka is found faster, by ping, before a request starts). */
  appendTimeoutMs?: number;
  /** How many brokers the cluster has, in the operator's word (KAFKA_CLUSTER_SIZE; see ensureTopics). */
  clusterSize?: number;
}

export class EventLog {
  readonly codec: AvroCodec;
  private readonly kafka: Kafka;
  private readonly names: TopicNames;
  private readonly topics: Topics;
  private readonly producer: BatchingProducer;
  private readonly consumers = new Set<Consumer>();
  /** Whether Kafka answers: every connection of this log is watched, so a lost broker is known at once. */
  private readonly reachability: KafkaReachability;

  /** The cluster's size as the operator declared it (KAFKA_CLUSTER_SIZE), for the topics this log makes. */
  private readonly clusterSize: number | undefined;

  constructor(
    brokers: string[],
    prefix: string,
    private readonly logger: Logger,
    opts: EventLogOptions = {},
  ) {
    const { codec, appendTimeoutMs = 3000 } = opts;
    this.clusterSize = opts.clusterSize;
    this.codec = codec ?? new AvroCodec();
    this.names = new TopicNames(prefix);
    this.reachability = new KafkaReachability(brokers);
    this.kafka = new Kafka({
      clientId: 'castlog',
      brokers,
      connectionTimeout: 1000,
      requestTimeout: 5000,
      retry: { initialRetryTime: 100, maxRetryTime: 1000, retries: 5 },
      logLevel: logLevel.NOTHING,
      socketFactory: this.reachability.socketFactory,
    });
    this.topics = new Topics(this.kafka, this.names);
    this.producer = new BatchingProducer(this.kafka, this.names, this.reachability, logger, appendTimeoutMs);
  }

  topicName(topic: TopicName): string {
    return this.names.physical(topic);
  }

  /** Topics found with less replication than the catalog asks (see ensureTopics); readiness shows them. */
  replicationShortfalls: string[] = [];

  /** Creates every topic of the catalog that does not exist yet, for a cluster of the brokers
   *  listed or of the declared `clusterSize` if more; topics that exist with less replication than
   *  the catalog asks are used, but logged as a warning and kept for /readyz. */
  async ensureTopics(): Promise<void> {
    this.replicationShortfalls = await this.topics.ensure(this.clusterSize);
    if (this.replicationShortfalls.length) {
      this.logger.warn(
        { shortfalls: this.replicationShortfalls },
        'topics have less replication than the catalog asks: an acknowledged event may not survive a broker loss',
      );
    }
  }

  /** [low, high) offsets of every partition of a topic. */
  offsets(topic: TopicName): Promise<{ partition: number; low: number; high: number }[]> {
    return this.topics.offsets(topic);
  }

  /** Per partition, the first offset whose timestamp is at or after `time` (the end if none). */
  offsetsAt(topic: TopicName, time: number): Promise<Map<number, number>> {
    return this.topics.offsetsAt(topic, time);
  }

  /** How many brokers the cluster lists now. */
  brokerCount(): Promise<number> {
    return this.topics.brokerCount();
  }

  /** Each partition's leader, replicas and in-sync replicas, as the cluster reports them now. */
  replicas(topic: TopicName): Promise<PartitionReplicas[]> {
    return this.topics.replicas(topic);
  }

  /** Offsets a consumer group (named without the prefix) has committed, per partition (-1: none). */
  committed(groupId: string, topic: TopicName): Promise<Map<number, number>> {
    return this.topics.committed(groupId, topic);
  }

  /** Who is in each consumer group whose name (without the prefix) starts with `start`: the processes consuming for it. */
  groupMembers(start: string): Promise<Map<string, GroupMember[]>> {
    return this.topics.groupMembers(start);
  }

  /** Deletes every topic of this log's prefix (how many): for test and bench runs, never the default prefix. */
  deleteTopics(timeoutMs = 5000): Promise<number> {
    if (!this.names.prefix) throw new Error('refusing to delete the topics of a deployment without a prefix');
    return this.topics.deleteAll(timeoutMs);
  }

  /** Whether Kafka answers now: false within a second of the brokers going away (readiness
   *  checks and ingest ask before they start). See KafkaReachability. */
  async ping(): Promise<boolean> {
    const ok = await this.reachability.check();
    if (!ok) this.topics.forgetAdmin();
    return ok;
  }

  /** Appends events with acks=all; resolves with each one's position once Kafka acknowledged it. */
  append(events: NewEvent[]): Promise<Position[]> {
    return Promise.all(
      events.map((e) =>
        this.producer.append({
          type: e.type,
          key: e.key,
          value: this.codec.encode(e.type, e.data),
          meta: newMeta(e.type, e.source, e.correlationId, e.causationId),
        }),
      ),
    );
  }

  /** Appends events already encoded (the relay forwards the event store's bytes unchanged). */
  appendEncodedAll(events: EncodedEvent[]): Promise<Position[]> {
    return Promise.all(events.map((e) => this.producer.append(e)));
  }

  decode(topic: TopicName, partition: number, m: KafkaMessage): LogRecord {
    return decodeRecord(this.codec, topic, partition, m);
  }

  /** Runs a consumer until stop(); each partition's records arrive in order, one batch at a time. */
  consume(opts: ConsumeOptions): Promise<RunningConsumer> {
    return runConsumer({ kafka: this.kafka, names: this.names, codec: this.codec, logger: this.logger, consumers: this.consumers }, opts);
  }

  /** A group id no other process shares: for readers that must see every partition. */
  static privateGroup(name: string): string {
    return `${name}-${uuidv4()}`;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.consumers].map((c) => c.disconnect()));
    await Promise.allSettled([this.producer.close(), this.topics.close(), this.reachability.close()]);
  }
}
