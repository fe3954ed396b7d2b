// Consumers: each partition's records arrive in order, decoded, one batch at a time; optionally
// pipelined (the next fetch runs while batches are handled).
import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import type { AvroCodec } from '../../schemas/codec.ts';
import type { TopicName } from '../../schemas/catalog.ts';
import { fromHeaders, type EventMeta } from '../../schemas/envelope.ts';
import type { Logger } from '../logger.ts';
import { retry } from '../retry.ts';
import { Lanes } from './lanes.ts';
import type { ConsumeOptions, LogRecord, PartitionBatch, TopicNames } from './types.ts';

export function decodeRecord(codec: AvroCodec, topic: TopicName, partition: number, m: KafkaMessage): LogRecord {
  const event = codec.decode(m.value ?? Buffer.alloc(0));
  return new DecodedRecord(topic, partition, Number(m.offset), m.key?.toString() ?? '', Number(m.timestamp), m, event);
}

/** A record whose CloudEvents attributes are read from its headers when first asked for: most
 * handlers never ask, and turning every header into a string was about 7% of a projector's CPU
 * (the patched kafkajs decodes a message's headers only when they are read, too). */
class DecodedRecord implements LogRecord {
  private attributes: EventMeta | undefined;
  constructor(
    readonly topic: TopicName,
    readonly partition: number,
    readonly offset: number,
    readonly key: string,
    readonly timestamp: number,
    private readonly message: KafkaMessage,
    readonly event: LogRecord['event'],
  ) {}

  get meta(): EventMeta {
    return (this.attributes ??= fromHeaders(this.message.headers));
  }

  /** As a plain record, for logs and JSON. */
  toJSON(): LogRecord {
    const { topic, partition, offset, key, timestamp, meta, event } = this;
    return { topic, partition, offset, key, timestamp, meta, event };
  }
}

export interface RunningConsumer {
  stop: () => Promise<void>;
}

/** Runs a consumer until stop(). `consumers` tracks it, so the log can disconnect it on close. */
export async function runConsumer(
  deps: { kafka: Kafka; names: TopicNames; codec: AvroCodec; logger: Logger; consumers: Set<Consumer> },
  opts: ConsumeOptions,
): Promise<RunningConsumer> {
  const { kafka, names, codec, logger, consumers } = deps;
  const consumer = kafka.consumer({
    // Namespaced like topics, so deployments sharing a cluster never share a group.
    groupId: names.prefix + opts.groupId,
    allowAutoTopicCreation: false,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: opts.linger?.maxWaitMs ?? 100,
    minBytes: opts.linger?.minBytes ?? 1,
    maxBytesPerPartition: opts.maxBytesPerPartition ?? 4 * 1024 * 1024,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 2000 },
  });
  consumers.add(consumer);
  await consumer.connect();
  // A consumer that says where it starts begins, until it has said, at the log's start rather than
  // its end: a seek kafkajs loses then costs a re-read, never a silent wait at the end of the log.
  const fromBeginning = opts.startAt !== undefined;
  for (const topic of opts.topics) await consumer.subscribe({ topic: names.physical(topic), fromBeginning });

  // Where each assigned partition starts, once startAt has said. kafkajs fetches as soon as the
  // group is joined, and an asynchronous startAt would seek too late (the first batch handed, then
  // everything again from the seek): each assigned partition is paused at the join and resumed once
  // its start is known and sought.
  const starts = new Map<string, { offset: Promise<number | undefined>; checked: boolean; sought: boolean }>();
  if (opts.startAt) {
    const startAt = opts.startAt;
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      starts.clear();
      const assigned = Object.entries(e.payload.memberAssignment).map(([topic, partitions]) => ({ topic, partitions }));
      consumer.pause(assigned);
      for (const { topic: name, partitions } of assigned) {
        for (const partition of partitions) {
          const offset = startAt(names.logical(name), partition).then((o) => {
            if (o !== undefined) consumer.seek({ topic: name, partition, offset: String(o) });
            return o;
          });
          offset
            .catch((err: unknown) => logger.error({ err, topic: name, partition }, 'start position unknown'))
            .finally(() => consumer.resume([{ topic: name, partitions: [partition] }]));
          starts.set(`${name}/${partition}`, { offset, checked: false, sought: false });
        }
      }
    });
  }
  /**
   * The lowest offset of a batch to hand on (records before a partition's start are dropped), or
   * undefined to hand none of it: the first batch since the join began past the start (a seek
   * kafkajs lost), and the consumer was sent back to it.
   */
  const handFrom = async (topic: string, partition: number, firstOffset: number): Promise<number | undefined> => {
    const start = starts.get(`${topic}/${partition}`);
    if (!start) return firstOffset;
    const offset = await start.offset.catch(() => undefined);
    if (offset === undefined) return firstOffset;
    if (!start.checked && firstOffset > offset) {
      if (!start.sought) {
        start.sought = true;
        consumer.seek({ topic, partition, offset: String(offset) });
        return undefined;
      }
      // Sent back once and still past it: the log no longer holds those records (retention).
      logger.warn({ topic, partition, start: offset, first: firstOffset }, 'records before the first offset are no longer in the log');
    }
    start.checked = true;
    return offset;
  };

  const failed = (err: unknown, batch: PartitionBatch) =>
    logger.error({ err, topic: batch.topic, partition: batch.partition }, 'batch handler failed, will retry');
  let stopped = false;
  const lanes = new Lanes();
  await consumer.run({
    autoCommit: opts.commit ?? false,
    partitionsConsumedConcurrently: opts.partitionsConcurrently ?? 1,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset }) => {
      const topic = names.logical(batch.topic);
      const from = batch.messages.length ? await handFrom(batch.topic, batch.partition, Number(batch.firstOffset())) : 0;
      if (from === undefined) return;
      if (batch.messages.length && Number(batch.lastOffset()) < from) {
        resolveOffset(batch.lastOffset()); // all before the start: nothing to hand
        return;
      }
      const records: LogRecord[] = [];
      for (const m of batch.messages) {
        if (Number(m.offset) < from) continue;
        try {
          records.push(decodeRecord(codec, topic, batch.partition, m));
        } catch (error) {
          opts.onPoison?.(topic, batch.partition, Number(m.offset), error);
        }
      }
      const handed: PartitionBatch = {
        topic,
        partition: batch.partition,
        records,
        firstOffset: Number(batch.firstOffset() ?? -1),
        highWatermark: Number(batch.highWatermark),
      };
      const seek = (outcome: void | { seek: number } | undefined) =>
        outcome && consumer.seek({ topic: batch.topic, partition: batch.partition, offset: String(outcome.seek) });
      if (opts.pipeline) {
        // Handled in its lane until it succeeds (or the consumer stops), backing off.
        const lane = lanes.get(batch.topic, batch.partition);
        const handle = () =>
          retry(() => opts.onBatch(handed), {
            delayMs: 200,
            factor: 2,
            maxDelayMs: 5000,
            stopped: () => stopped,
            onRetry: (err) => failed(err, handed),
          });
        lane.push(() => handle().then(seek));
        if (batch.messages.length) resolveOffset(batch.lastOffset());
        await lane.waitBelow(opts.pipeline + 1);
        return;
      }
      let outcome: void | { seek: number };
      try {
        outcome = await opts.onBatch(handed);
      } catch (err) {
        // kafkajs retries the batch; say why, or a stuck consumer is a silent one.
        failed(err, handed);
        throw err;
      }
      if (outcome) seek(outcome);
      else if (batch.messages.length) resolveOffset(batch.lastOffset());
    },
  });
  return {
    stop: async () => {
      stopped = true;
      consumers.delete(consumer);
      await consumer.disconnect();
      await lanes.drained();
    },
  };
}
