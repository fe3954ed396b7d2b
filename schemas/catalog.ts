// The topic catalog: every topic, its key, its partition count, the events it carries and the
// replication it needs. Topic creation applies it; producers partition by key from here.
import type { EventType } from './types.generated.ts';

export interface TopicSpec {
  partitions: number;
  key: string;
  events: readonly EventType[];
}

export const TOPICS = {
  captions: { partitions: 6, key: 'channel id', events: ['CaptionFragmentReceived'] },
  streams: {
    partitions: 6,
    key: 'user id (stream id for StreamIdIssued)',
    events: [
      'UserIdIssued',
      'StreamIdIssued',
      'UserLimitSet',
      'StreamActivated',
      'StreamHeartbeat',
      'StreamDeactivated',
      'ActivationRejected',
    ],
  },
  uploads: {
    partitions: 6,
    key: 'upload id',
    events: ['UploadCreated', 'UploadChunkAppended', 'UploadCompleted', 'UploadRejected', 'UploadTerminated', 'UploadExpired'],
  },
  encodes: {
    partitions: 6,
    key: 'job id',
    events: [
      'EncodeRequested',
      'EncodeDeduplicated',
      'EncodeStepStarted',
      'EncodeProgressed',
      'EncodeStepCompleted',
      'EncodeFailed',
      'EncodeCompleted',
    ],
  },
  alerts: {
    partitions: 6,
    key: 'alert id',
    events: ['AlertCreated', 'AlertDeleted', 'AlertEmailStopped', 'AlertMatched'],
  },
} as const satisfies Record<string, TopicSpec>;

export type TopicName = keyof typeof TOPICS;

/** What every topic needs of a cluster of `brokers` brokers so an acknowledged event survives one
 *  broker's loss: three copies where there are three brokers, and an append (acks=all) refused
 *  unless two of them hold it. A single broker (development) gets what it can: one copy. */
export interface Replication {
  replicationFactor: number;
  minInsyncReplicas: number;
}

export function replicationFor(brokers: number): Replication {
  const replicationFactor = Math.max(1, Math.min(3, brokers));
  return { replicationFactor, minInsyncReplicas: replicationFactor >= 3 ? 2 : 1 };
}

export function topicOf(event: EventType): TopicName {
  for (const [name, spec] of Object.entries(TOPICS) as [TopicName, TopicSpec][]) {
    if (spec.events.includes(event)) return name;
  }
  throw new Error(`no topic carries ${event}`);
}
