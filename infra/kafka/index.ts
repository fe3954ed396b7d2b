// The one module that talks to Kafka (kafkajs). Everything else sees typed, decoded events and
// (partition, offset) positions. event-log.ts is the whole of it as castlog uses it; the other
// files are its parts: topics (admin), the batching producer, consumers, and reachability.
export { EventLog } from './event-log.ts';
export { KafkaUnavailable, withTimeout } from './reachability.ts';
export { ClusterIncomplete, TopicMissing } from './topics.ts';
export type { ConsumeOptions, EncodedEvent, GroupMember, LogRecord, NewEvent, PartitionBatch, Position } from './types.ts';
