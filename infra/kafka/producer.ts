// Appends with acks=all through kafkajs's idempotent producer, many callers' events in one produce
// request (group commit), so many slow streams still make few round trips. A caller hears of
// its event's position once Kafka acknowledged it, or that it was not acknowledged.
import type { Kafka, Producer } from 'kafkajs';
import { TOPICS, topicOf } from '../../schemas/catalog.ts';
import { toHeaders } from '../../schemas/envelope.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import type { Logger } from '../logger.ts';
import { KafkaUnavailable, withTimeout, type KafkaReachability } from './reachability.ts';
import type { EncodedEvent, Position, TopicNames } from './types.ts';

/** A produce request stays well under the broker's message.max.bytes (1 MiB by default). */
const MAX_REQUEST_BYTES = 512 * 1024;
const MAX_REQUEST_EVENTS = 10_000;

interface Pending {
  topic: string;
  partition: number;
  message: { key: string; value: Buffer; headers: Record<string, string>; partition: number };
  resolve: (p: Position) => void;
  reject: (e: unknown) => void;
}

export class BatchingProducer {
  private producer: Producer | undefined;
  private producerReady: Promise<Producer> | undefined;
  private queue: Pending[] = [];
  private flushing = false;
  /** Settles when the producer's last send has (acknowledged or failed for good). */
  private unsettled: Promise<void> = Promise.resolve();

  constructor(
    private readonly kafka: Kafka,
    private readonly names: TopicNames,
    private readonly reachability: KafkaReachability,
    private readonly logger: Logger,
    /** How long an append may wait for Kafka's acknowledgement before it is reported as not
     *  acknowledged (an unreachable Kafka is found faster, by ping, before a request starts). */
    private readonly appendTimeoutMs: number,
  ) {}

  /** Resolves with the event's position once Kafka has acknowledged it (in order per key). */
  append(e: EncodedEvent): Promise<Position> {
    const topic = topicOf(e.type);
    const partition = partitionFor(e.key, TOPICS[topic].partitions);
    return new Promise<Position>((resolve, reject) => {
      this.queue.push({
        topic: this.names.physical(topic),
        partition,
        message: { key: e.key, value: e.value, headers: toHeaders(e.meta), partition },
        resolve,
        reject,
      });
      this.flushSoon();
    });
  }

  private flushScheduled = false;

  /**
   * Starts a send once this turn of the event loop is done, not at once: callers answered by the
   * last acknowledgement append their next events in the microtasks that follow it, and a send
   * started by the first of them would carry that one event alone while the rest wait behind it.
   */
  private flushSoon(): void {
    if (this.flushing || this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  async close(): Promise<void> {
    await this.producer?.disconnect();
  }

  /** Drops a producer (if it is still the current one): the next append makes a new one. */
  private discard(producer: Producer): void {
    if (this.producer !== producer) return;
    this.producer = undefined;
    this.producerReady = undefined;
    void producer.disconnect().catch(() => undefined);
  }

  private ready(): Promise<Producer> {
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
          const offsets = await this.send(batch);
          this.reachability.acknowledged(epoch);
          const next = new Map<string, number>();
          for (const p of batch) {
            const k = `${p.topic}/${p.partition}`;
            const i = next.get(k) ?? 0;
            next.set(k, i + 1);
            const b = offsets.get(k);
            if (b === undefined) p.reject(new KafkaUnavailable(`no acknowledgement for ${k}`));
            else p.resolve({ partition: p.partition, offset: b + i });
          }
        } catch (err) {
          this.logger.warn({ err }, 'append failed');
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

  /** Sends one batch; resolves with the base offset of each topic/partition in it. */
  private async send(batch: Pending[]): Promise<Map<string, number>> {
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
    try {
      // A batch whose callers were answered early (a timeout, Kafka lost) may still be retried by
      // the producer: nothing more is sent until it settles, or this batch could land on the log
      // before it.
      await until(this.unsettled);
      const producer = await until(this.ready());
      const send = producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, ps]) => ({ topic, messages: ps.map((p) => p.message) })),
      });
      // A send that failed may still have been written (the connection broke after the broker
      // took it), and kafkajs then hands its sequence numbers to the next batch: the broker would
      // take that batch for a repeat, drop it and answer with the old offset. So a producer is
      // never used again after a failed send; a new one has a new id.
      const settled: Promise<void> = send.then(
        () => undefined,
        () => this.discard(producer),
      );
      this.unsettled = settled;
      void settled.then(() => {
        if (this.unsettled === settled) this.unsettled = Promise.resolve();
      });
      const metadata = await until(send);
      return new Map(metadata.map((m) => [`${m.topicName}/${m.partition}`, Number(m.baseOffset)]));
    } finally {
      loss.done();
    }
  }

  /** How many queued events fit one produce request. */
  private batchLength(): number {
    let bytes = 0;
    let n = 0;
    while (n < this.queue.length && n < MAX_REQUEST_EVENTS) {
      bytes += this.queue[n]!.message.value.length + 200;
      if (bytes > MAX_REQUEST_BYTES && n > 0) break;
      n++;
    }
    return n;
  }
}
