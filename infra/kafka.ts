// The one module that talks to Kafka (kafkajs). Everything else sees typed, decoded events
// and (partition, offset) positions.
import { Kafka, logLevel, type Admin, type Consumer, type Producer, type KafkaMessage } from 'kafkajs';
import { v4 as uuidv4 } from 'uuid';
import { AvroCodec, type Decoded } from '../schemas/codec.ts';
import { TOPICS, topicOf, type TopicName } from '../schemas/catalog.ts';
import { newMeta, toHeaders, fromHeaders, type EventMeta } from '../schemas/envelope.ts';
import { partitionFor } from '../schemas/partitioner.ts';
import type { EventDataMap, EventType } from '../schemas/types.generated.ts';
import type { Logger } from './logger.ts';
import { KafkaReachability, KafkaUnavailable, withTimeout } from './kafka-reachability.ts';

export { KafkaUnavailable, withTimeout };

export interface Position {
  partition: number;
  offset: number;
}

export interface NewEvent<T extends EventType = EventType> {
  type: T;
  key: string;
  data: EventDataMap[T];
  source: string;
  correlationId?: string;
  causationId?: string;
}

export interface LogRecord {
  topic: TopicName;
  partition: number;
  offset: number;
  key: string;
  /** Broker timestamp (ms), when the record was appended. */
  timestamp: number;
  meta: EventMeta;
  event: Decoded;
}

export interface PartitionBatch {
  topic: TopicName;
  partition: number;
  records: LogRecord[];
  /** Offset of the first message fetched, decodable or not. */
  firstOffset: number;
  /** Offset after the last record in the partition, as the broker last reported it. */
  highWatermark: number;
}

export interface ConsumeOptions {
  groupId: string;
  topics: TopicName[];
  /** Where each assigned partition starts; undefined keeps the group's committed offset or the end. */
  startAt?: (topic: TopicName, partition: number) => Promise<number | undefined>;
  /** Handles one partition's batch; returning { seek } re-reads that partition from the offset given. */
  onBatch: (batch: PartitionBatch) => Promise<void | { seek: number }>;
  /** Called for a record that cannot be decoded; it is skipped, never retried forever. */
  onPoison?: (topic: TopicName, partition: number, offset: number, error: unknown) => void;
  /** Commit consumed offsets to the group (for lag tools); positions of record live elsewhere. */
  commit?: boolean;
  maxBytesPerPartition?: number;
  /** How many partitions' batches may be handled at once (each partition stays in order). */
  partitionsConcurrently?: number;
  /**
   * Batches per partition that may wait for onBatch while the next fetch runs (kafkajs fetches
   * only once every batch of the last fetch was handled, so without this the database idles
   * during fetches and Node idles during writes). Only for consumers that keep their own
   * positions and check each batch against them: group offsets then run ahead of what is handled,
   * and a failing batch is retried in place rather than fetched again.
   */
  pipeline?: number;
}

const MAX_REQUEST_BYTES = 512 * 1024;

interface Pending {
  topic: string;
  partition: number;
  message: { key: string; value: Buffer; headers: Record<string, string>; partition: number };
  resolve: (p: Position) => void;
  reject: (e: unknown) => void;
}

export class EventLog {
  readonly codec: AvroCodec;
  private readonly kafka: Kafka;
  private producer: Producer | undefined;
  private producerReady: Promise<Producer> | undefined;
  private adminClient: Admin | undefined;
  private readonly consumers = new Set<Consumer>();
  private queue: Pending[] = [];
  private flushing = false;
  /** Settles when the producer's last send has (acknowledged or failed for good). */
  private unsettled: Promise<void> = Promise.resolve();
  /** Whether Kafka answers: every connection of this log is watched, so a lost broker is known at once. */
  private readonly reachability: KafkaReachability;

  constructor(
    brokers: string[],
    private readonly prefix: string,
    private readonly logger: Logger,
    codec?: AvroCodec,
    /** How long an append may wait for Kafka's acknowledgement before it is reported as not
     *  acknowledged (an unreachable Kafka is found faster, by ping, before a request starts). */
    private readonly appendTimeoutMs = 3000,
  ) {
    this.codec = codec ?? new AvroCodec();
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
  }

  topicName(topic: TopicName): string {
    return this.prefix + topic;
  }

  private logicalTopic(name: string): TopicName {
    return name.slice(this.prefix.length) as TopicName;
  }

  private adminReady: Promise<Admin> | undefined;

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

  /** Creates every topic of the catalog that does not exist yet. */
  async ensureTopics(): Promise<void> {
    const admin = await this.admin();
    const existing = new Set(await admin.listTopics());
    const missing = Object.entries(TOPICS)
      .filter(([name]) => !existing.has(this.topicName(name as TopicName)))
      .map(([name, spec]) => ({ topic: this.topicName(name as TopicName), numPartitions: spec.partitions, replicationFactor: -1 }));
    if (!missing.length) return;
    // kafkajs's own waitForLeaders gives up when metadata briefly says "unknown topic": wait below instead.
    await admin.createTopics({ topics: missing, waitForLeaders: false }).catch((e: { type?: string }) => {
      if (e.type !== 'TOPIC_ALREADY_EXISTS') throw e; // another process made them first
    });
    // Leaders are elected, but a broker may not serve the new partitions for a moment: return only
    // once every new topic answers, so callers never see "does not host this topic-partition".
    for (const { topic } of missing) {
      for (let attempt = 1; ; attempt++) {
        try {
          await admin.fetchTopicOffsets(topic);
          break;
        } catch (err) {
          if (attempt >= 50) throw err;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  }

  /** [low, high) offsets of every partition of a topic. */
  async offsets(topic: TopicName): Promise<{ partition: number; low: number; high: number }[]> {
    const admin = await this.admin();
    const rows = await admin.fetchTopicOffsets(this.topicName(topic));
    return rows
      .map((r) => ({ partition: r.partition, low: Number(r.low), high: Number(r.high) }))
      .sort((a, b) => a.partition - b.partition);
  }

  /** Per partition, the first offset whose timestamp is at or after `time` (the end if none). */
  async offsetsAt(topic: TopicName, time: number): Promise<Map<number, number>> {
    const admin = await this.admin();
    const rows = await admin.fetchTopicOffsetsByTimestamp(this.topicName(topic), time);
    const ends = await this.offsets(topic);
    return new Map(rows.map((r) => [r.partition, Number(r.offset) < 0 ? ends.find((e) => e.partition === r.partition)!.high : Number(r.offset)]));
  }

  /** Whether Kafka answers now: false within a second of the brokers going away (readiness
   *  checks and ingest ask before they start). See KafkaReachability. */
  async ping(): Promise<boolean> {
    const ok = await this.reachability.check();
    if (!ok && this.adminClient) {
      // A refused or broken connection may be cached in the admin client: make a fresh one next time.
      const admin = this.adminClient;
      this.adminClient = undefined;
      this.adminReady = undefined;
      void admin.disconnect().catch(() => undefined);
    }
    return ok;
  }

  /** Drops a producer (if it is still the current one): the next append makes a new one. */
  private discardProducer(producer: Producer): void {
    if (this.producer !== producer) return;
    this.producer = undefined;
    this.producerReady = undefined;
    void producer.disconnect().catch(() => undefined);
  }

  private async readyProducer(): Promise<Producer> {
    if (!this.producerReady) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        retry: { initialRetryTime: 50, maxRetryTime: 500, retries: 3 },
      });
      this.producerReady = producer.connect().then(
        () => (this.producer = producer),
        (e) => {
          this.producerReady = undefined;
          throw e;
        },
      );
    }
    return this.producerReady;
  }

  /**
   * Appends events with acks=all through the idempotent producer. Resolves with each event's
   * position once Kafka has acknowledged it. Concurrent appends share one produce request
   * (group commit), so many slow streams still make few round trips.
   */
  append(events: NewEvent[]): Promise<Position[]> {
    return Promise.all(events.map((e) => this.appendOne(e)));
  }

  private appendOne(e: NewEvent): Promise<Position> {
    const meta = newMeta(e.type, e.source, e.correlationId, e.causationId);
    return this.appendEncoded({ type: e.type, key: e.key, value: this.codec.encode(e.type, e.data), meta });
  }

  /** Appends encoded events; resolves when Kafka has acknowledged all of them (in order per key). */
  appendEncodedAll(events: { type: EventType; key: string; value: Buffer; meta: EventMeta }[]): Promise<Position[]> {
    return Promise.all(events.map((e) => this.appendEncoded(e)));
  }

  /** Appends an event already encoded (the relay forwards the event store's bytes unchanged). */
  appendEncoded(e: { type: EventType; key: string; value: Buffer; meta: EventMeta }): Promise<Position> {
    const topic = topicOf(e.type);
    const partition = partitionFor(e.key, TOPICS[topic].partitions);
    return new Promise<Position>((resolve, reject) => {
      this.queue.push({ topic: this.topicName(topic), partition, message: { key: e.key, value: e.value, headers: toHeaders(e.meta), partition }, resolve, reject });
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.batchLength());
        const epoch = this.reachability.now;
        try {
          // Kafka was just found unreachable: say so now rather than after the producer's retries.
          // Nothing was sent, so nothing can have been written.
          if (this.reachability.knownDown) throw new KafkaUnavailable('Kafka cannot be reached');
          const byTopic = new Map<string, Pending[]>();
          for (const p of batch) {
            const list = byTopic.get(p.topic);
            if (list) list.push(p);
            else byTopic.set(p.topic, [p]);
          }
          // Kafka lost (a refused or broken connection) ends the wait at once, like a timeout.
          const loss = this.reachability.watchForLoss();
          const deadline = Date.now() + this.appendTimeoutMs;
          const until = <T>(p: Promise<T>) => withTimeout(Promise.race([p, loss.lost]), Math.max(1, deadline - Date.now()));
          let metadata: Awaited<ReturnType<Producer['sendBatch']>>;
          try {
            // A batch whose callers were answered early (a timeout, Kafka lost) may still be
            // retried by the producer: nothing more is sent until it settles, or this batch could
            // land on the log before it.
            await until(this.unsettled);
            const producer = await until(this.readyProducer());
            const send = producer.sendBatch({
              acks: -1,
              topicMessages: [...byTopic].map(([topic, ps]) => ({ topic, messages: ps.map((p) => p.message) })),
            });
            // A send that failed may still have been written (the connection broke after the
            // broker took it), and kafkajs then hands its sequence numbers to the next batch: the
            // broker would take that batch for a repeat, drop it and answer with the old offset.
            // So a producer is never used again after a failed send; a new one has a new id.
            const settled: Promise<void> = send.then(
              () => undefined,
              () => this.discardProducer(producer),
            );
            this.unsettled = settled;
            void settled.then(() => {
              if (this.unsettled === settled) this.unsettled = Promise.resolve();
            });
            metadata = await until(send);
          } finally {
            loss.done();
          }
          this.reachability.acknowledged(epoch);
          const base = new Map(metadata.map((m) => [`${m.topicName}/${m.partition}`, Number(m.baseOffset)]));
          const next = new Map<string, number>();
          for (const p of batch) {
            const k = `${p.topic}/${p.partition}`;
            const i = next.get(k) ?? 0;
            next.set(k, i + 1);
            const b = base.get(k);
            if (b === undefined) p.reject(new KafkaUnavailable(`no acknowledgement for ${k}`));
            else p.resolve({ partition: p.partition, offset: b + i });
          }
        } catch (err) {
          this.logger.warn({ err: String(err) }, 'append failed');
          // Kafka refused or failed the request itself (not a mere timeout): say so to ping().
          if (!(err instanceof KafkaUnavailable)) this.reachability.unreachable();
          // Everything queued behind a failed batch fails with it: sending it now could put it on
          // the log ahead of the failed events, and callers rely on order per key.
          const behind = this.queue.splice(0);
          for (const p of [...batch, ...behind]) p.reject(new KafkaUnavailable(String(err)));
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** How many queued events fit one produce request: a partition's record batch must stay under the
   * broker's message.max.bytes (1 MiB by default), so requests are capped well below it. */
  private batchLength(): number {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < 10_000) {
      bytes += this.queue[n]!.message.value.length + 200;
      if (bytes > MAX_REQUEST_BYTES && n > 0) break;
      n++;
    }
    return n;
  }

  decode(topic: TopicName, partition: number, m: KafkaMessage): LogRecord {
    const event = this.codec.decode(m.value ?? Buffer.alloc(0));
    return {
      topic,
      partition,
      offset: Number(m.offset),
      key: m.key?.toString() ?? '',
      timestamp: Number(m.timestamp),
      meta: fromHeaders(m.headers as Record<string, Buffer>),
      event,
    };
  }

  /** Runs a consumer until stop(); each partition's records arrive in order, one batch at a time. */
  async consume(opts: ConsumeOptions): Promise<{ stop: () => Promise<void> }> {
    const consumer = this.kafka.consumer({
      // Namespaced like topics, so deployments sharing a cluster never share a group.
      groupId: this.prefix + opts.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      maxWaitTimeInMs: 100,
      maxBytesPerPartition: opts.maxBytesPerPartition ?? 4 * 1024 * 1024,
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 2000 },
    });
    this.consumers.add(consumer);
    await consumer.connect();
    for (const topic of opts.topics) await consumer.subscribe({ topic: this.topicName(topic), fromBeginning: false });

    if (opts.startAt) {
      const startAt = opts.startAt;
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        for (const [name, partitions] of Object.entries(e.payload.memberAssignment)) {
          for (const partition of partitions) {
            void startAt(this.logicalTopic(name), partition).then((offset) => {
              if (offset !== undefined) consumer.seek({ topic: name, partition, offset: String(offset) });
            });
          }
        }
      });
    }

    let stopped = false;
    const lanes = new Lanes();
    await consumer.run({
      autoCommit: opts.commit ?? false,
      partitionsConsumedConcurrently: opts.partitionsConcurrently ?? 1,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset }) => {
        const topic = this.logicalTopic(batch.topic);
        const records: LogRecord[] = [];
        for (const m of batch.messages) {
          try {
            records.push(this.decode(topic, batch.partition, m));
          } catch (error) {
            opts.onPoison?.(topic, batch.partition, Number(m.offset), error);
          }
        }
        const handed: PartitionBatch = { topic, partition: batch.partition, records, firstOffset: Number(batch.firstOffset() ?? -1), highWatermark: Number(batch.highWatermark) };
        const seek = (outcome: void | { seek: number }) => outcome && consumer.seek({ topic: batch.topic, partition: batch.partition, offset: String(outcome.seek) });
        if (opts.pipeline) {
          const lane = lanes.get(batch.topic, batch.partition);
          lane.push(() => this.handleUntilDone(opts, handed, () => stopped).then(seek));
          if (batch.messages.length) resolveOffset(batch.lastOffset());
          await lane.waitBelow(opts.pipeline + 1);
          return;
        }
        let outcome: void | { seek: number };
        try {
          outcome = await opts.onBatch(handed);
        } catch (err) {
          // kafkajs retries the batch; say why, or a stuck consumer is a silent one.
          this.batchFailed(err, handed);
          throw err;
        }
        if (outcome) seek(outcome);
        else if (batch.messages.length) resolveOffset(batch.lastOffset());
      },
    });
    return {
      stop: async () => {
        stopped = true;
        this.consumers.delete(consumer);
        await consumer.disconnect();
        await lanes.drained();
      },
    };
  }

  /** onBatch until it succeeds (or the consumer stops), backing off; for pipelined consumers. */
  private async handleUntilDone(opts: ConsumeOptions, batch: PartitionBatch, stopped: () => boolean): Promise<void | { seek: number }> {
    for (let delay = 200; !stopped(); delay = Math.min(delay * 2, 5000)) {
      try {
        return await opts.onBatch(batch);
      } catch (err) {
        this.batchFailed(err, batch);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private batchFailed(err: unknown, batch: PartitionBatch): void {
    this.logger.error({ err: String(err), stack: (err as Error).stack, topic: batch.topic, partition: batch.partition }, 'batch handler failed, will retry');
  }

  /** A group id no other process shares: for readers that must see every partition. */
  static privateGroup(name: string): string {
    return `${name}-${uuidv4()}`;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.consumers].map((c) => c.disconnect()));
    await Promise.allSettled([this.producer?.disconnect(), this.adminClient?.disconnect(), this.reachability.close()]);
  }
}

/** One queue of work per partition: each runs its tasks in order, and says how many are waiting. */
class Lanes {
  private readonly lanes = new Map<string, Lane>();

  get(topic: string, partition: number): Lane {
    const key = `${topic}/${partition}`;
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = new Lane()));
    return lane;
  }

  async drained(): Promise<void> {
    await Promise.all([...this.lanes.values()].map((l) => l.waitBelow(1)));
  }
}

class Lane {
  private tail: Promise<unknown> = Promise.resolve();
  private depth = 0;
  private waiters: (() => void)[] = [];

  push(task: () => Promise<unknown>): void {
    this.depth++;
    this.tail = this.tail.then(task).catch(() => undefined).finally(() => {
      this.depth--;
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Resolves once fewer than n tasks are queued or running. */
  async waitBelow(n: number): Promise<void> {
    while (this.depth >= n) await new Promise<void>((r) => this.waiters.push(r));
  }
}
