// What the fanout serves from each topic: how a record becomes a keyed message, and how a repeat
// is recognised. Captions are keyed by channel; stream-limit events by "user:<id>".
import { CHANNEL_ID_RULE, isChannelId } from '../../domain/captions/channel.ts';
import { LastSeqs } from '../../domain/captions/repeats.ts';
import { formatPosition } from '../../domain/position.ts';
import type { EventMeta } from '../../schemas/envelope.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';
import { captionMessage, userEventMessage } from './protocol.ts';

export interface FeedRecord {
  offset: number;
  data: unknown;
  type?: string;
  meta?: EventMeta;
}

export interface FeedEntry {
  key: string;
  json: string;
  /** When the event was accepted (ms), for the end-to-end latency metric. */
  at: number;
}

export interface Feed {
  /** Undefined for a record that is not delivered (a repeat, or nothing a subscriber sees). */
  entry(partition: number, record: FeedRecord): FeedEntry | undefined;
  /** Why a subscription key is invalid ("must …", said of the channel), or undefined when it is fine. */
  invalidKey(key: string): string | undefined;
  /** The Kafka key whose partition holds a subscription key's records. */
  partitionKey(key: string): string;
  /** A subscription key's records are spread over every partition (the topic is keyed by
   *  something else): such subscriptions are live only, with no resuming from a position. */
  spansPartitions?: boolean;
}

/** Captions: a station's repeat is dropped (domain/captions/repeats.ts). */
export function captionsFeed(): Feed {
  const seqs = new LastSeqs();
  return {
    entry(partition, r) {
      const d = r.data as CaptionFragmentReceived;
      if (!seqs.admit(d)) return undefined;
      return { key: d.channel, json: captionMessage(d, formatPosition({ partition, offset: r.offset })), at: d.receivedAt };
    },
    invalidKey: (key) => (isChannelId(key) ? undefined : CHANNEL_ID_RULE),
    partitionKey: (key) => key,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const USER_PREFIX = 'user:';

/** A user's own events (stream activations, upload and encode progress, alert matches): the relay
 * may repeat an event, seen by its (stream, version), and the matcher a match, seen by its
 * (alert, caption). For `streams` (keyed by user) a user channel lives in one
 * partition and can be resumed; `uploads`, `encodes` and `alerts` are keyed otherwise, so there the
 * channel spans partitions and positions carry the topic ("uploads/3:17"). */
export function userEventsFeed(topic?: 'uploads' | 'encodes' | 'alerts'): Feed {
  const lastVersion = new Map<string, number>();
  const matches = new RecentKeys(100_000);
  return {
    entry(partition, r) {
      const d = r.data as { userId?: string; at?: number; alertId?: string; position?: string };
      if (!d.userId || !r.type) return undefined;
      const { stream, streamVersion } = r.meta ?? {};
      if (stream !== undefined && streamVersion !== undefined) {
        if ((lastVersion.get(stream) ?? 0) >= streamVersion) return undefined;
        lastVersion.set(stream, streamVersion);
      }
      // The matcher publishes a match at least once: a repeat is the same (alert, caption).
      if (r.type === 'AlertMatched' && !matches.admit(`${d.alertId}@${d.position}`)) return undefined;
      const key = USER_PREFIX + d.userId;
      const position = (topic ? `${topic}/` : '') + formatPosition({ partition, offset: r.offset });
      return { key, json: userEventMessage(key, position, r.type, d), at: d.at ?? Date.now() };
    },
    invalidKey: (key) =>
      key.startsWith(USER_PREFIX) && UUID.test(key.slice(USER_PREFIX.length)) ? undefined : 'must be user:<user id> for a user channel',
    partitionKey: (key) => key.slice(USER_PREFIX.length),
    spansPartitions: topic !== undefined,
  };
}

/** The last `max` keys seen: admits a key once while it is remembered. */
class RecentKeys {
  private readonly seen = new Set<string>();
  constructor(private readonly max: number) {}

  admit(key: string): boolean {
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    // A Set iterates in insertion order: the first is the oldest.
    if (this.seen.size > this.max) this.seen.delete(this.seen.values().next().value!);
    return true;
  }
}
