// Consumers: each partition's records arrive in order, decoded, one batch at a time; optionally
// pipelined (the next fetch runs while batches are handled).
import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import type { AvroCodec } from '../../schemas/codec.ts';
import type { TopicName } from '../../schemas/catalog.ts';
import { fromHeaders } from '../../schemas/envelope.ts';
import type { Logger } from '../logger.ts';
import { retry } from '../retry.ts';
import { Lanes } from './lanes.ts';
import type { ConsumeOptions, LogRecord, PartitionBatch, TopicNames } from './types.ts';

export function decodeRecord(codec: AvroCodec, topic: TopicName, partition: number, m: KafkaMessage): LogRecord {
  const event = codec.decode(m.value ?? Buffer.alloc(0));
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
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: opts.maxBytesPerPartition ?? 4 * 1024 * 1024,
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 2000 },
  });
  consumers.add(consumer);
  await consumer.connect();
  for (const topic of opts.topics) await consumer.subscribe({ topic: names.physical(topic), fromBeginning: false });

  if (opts.startAt) {
    const startAt = opts.startAt;
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      for (const [name, partitions] of Object.entries(e.payload.memberAssignment)) {
        for (const partition of partitions) {
          void startAt(names.logical(name), partition).then((offset) => {
            if (offset !== undefined) consumer.seek({ topic: name, partition, offset: String(offset) });
          });
        }
      }
    });
  }

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
      const records: LogRecord[] = [];
      for (const m of batch.messages) {
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
