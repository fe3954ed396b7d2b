// What the rest of castlog sees of the log: events to append, records read, batches handed over.
import type { Position } from '../../domain/position.ts';
import type { Decoded } from '../../schemas/codec.ts';
import type { TopicName } from '../../schemas/catalog.ts';
import type { EventMeta } from '../../schemas/envelope.ts';
import type { EventDataMap, EventType } from '../../schemas/types.generated.ts';

export type { Position };

export interface NewEvent<T extends EventType = EventType> {
  type: T;
  key: string;
  data: EventDataMap[T];
  source: string;
  correlationId?: string;
  causationId?: string;
}

/** An event already encoded (the relay forwards the event store's bytes unchanged). */
export interface EncodedEvent {
  type: EventType;
  key: string;
  value: Buffer;
  meta: EventMeta;
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

/** A process in a consumer group, as Kafka's group coordinator has it (until its session ends). */
export interface GroupMember {
  clientId: string;
  /** The address the member connected from. */
  host: string;
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
  /**
   * How long a fetch may wait for `minBytes` when records are few (default: none, any record is
   * handed at once). For a reader nobody watches live: fewer, larger batches for some latency.
   */
  linger?: { minBytes: number; maxWaitMs: number };
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

/** Physical topic names: a prefix lets several deployments (or test runs) share a cluster. */
export class TopicNames {
  constructor(readonly prefix: string) {}

  physical(topic: TopicName): string {
    return this.prefix + topic;
  }

  logical(name: string): TopicName {
    return name.slice(this.prefix.length) as TopicName;
  }
}
