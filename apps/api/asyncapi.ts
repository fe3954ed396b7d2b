// The asynchronous API as an AsyncAPI 3.0 document (/asyncapi.json): the fanout's WebSocket
// /v1/live (docs/live-protocol.md is its prose) and the Kafka topics (schemas/catalog.ts) with
// their Avro payloads and CloudEvents headers. Built from the same constants the code uses.
import {
  CLOSE_RESTART,
  CLOSE_SLOW_CONSUMER,
  CLOSE_TOO_BIG,
  MAX_FRAME_BYTES,
  MAX_REPLAY_SPEED,
  MAX_REPLAYS,
  MAX_SUBSCRIPTIONS,
  MIN_REPLAY_SPEED,
} from '../fanout/protocol.ts';
import { TOPICS, type TopicName } from '../../schemas/catalog.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AVRO_DIR, type SchemaRegistry } from '../../schemas/registry.ts';

type Schema = Record<string, unknown>;

const AVRO = 'application/vnd.apache.avro;version=1.9.0';
const str = (description?: string): Schema => ({ type: 'string', ...(description ? { description } : {}) });
const livePosition = str('"partition:offset" (user channels spanning partitions: "topic/partition:offset")');
const channelName = str('A channel id ([a-z0-9][a-z0-9._-]{0,63}) or "user:<user id>"');
const time = { oneOf: [{ type: 'integer', minimum: 0 }, { type: 'string' }], description: 'ms since the epoch or an ISO 8601 date' };
const frame = (required: string[], properties: Record<string, Schema>): Schema => ({ type: 'object', required, properties });

/** What a client sends: one JSON object per text frame, at most MAX_FRAME_BYTES. */
const CLIENT: Record<string, { summary: string; payload: Schema }> = {
  subscribe: {
    summary: 'Follow a channel from now on, or from after `since` (everything after it, then live)',
    payload: frame(['op', 'channel'], {
      op: { const: 'subscribe' },
      channel: channelName,
      since: { ...livePosition, description: 'The last position received: resume exactly after it' },
      batch: {
        type: 'boolean',
        description: 'Opt in to batch frames: several messages of this channel in one {"type":"batch"} frame',
      },
    }),
  },
  unsubscribe: {
    summary: 'Stop following a channel',
    payload: frame(['op', 'channel'], { op: { const: 'unsubscribe' }, channel: channelName }),
  },
  replay: {
    summary: `The captions of a time range, paced at \`speed\`× (up to ${MAX_REPLAYS} at once per connection)`,
    payload: frame(['op', 'channel', 'from', 'to'], {
      op: { const: 'replay' },
      channel: channelName,
      from: time,
      to: time,
      speed: { type: 'number', minimum: MIN_REPLAY_SPEED, maximum: MAX_REPLAY_SPEED, default: 1 },
      id: { type: 'string', minLength: 1, maxLength: 64 },
    }),
  },
  stopReplay: { summary: 'Stop a replay', payload: frame(['op', 'id'], { op: { const: 'stop_replay' }, id: str() }) },
};

const caption = {
  type: { const: 'caption' },
  channel: channelName,
  position: livePosition,
  station: str(),
  seq: { type: 'integer' },
  text: str(),
  start: { type: 'integer' },
  end: { type: 'integer' },
  mode: { type: ['string', 'null'] },
  lang: { type: ['string', 'null'] },
};
const CAPTION_REQUIRED = ['type', 'channel', 'position', 'station', 'seq', 'text', 'start', 'end'];

/** What the server sends. */
const SERVER: Record<string, { summary: string; payload: Schema }> = {
  subscribed: {
    summary: 'The first answer to a subscribe: where it starts, and whether everything after `since` will come',
    payload: frame(['type', 'channel', 'position', 'recovered'], {
      type: { const: 'subscribed' },
      channel: channelName,
      position: livePosition,
      recovered: { type: 'boolean' },
    }),
  },
  caption: { summary: 'One caption fragment', payload: frame(CAPTION_REQUIRED, caption) },
  replayCaption: {
    summary: 'A replayed caption: the live shape, plus the replay id and when it was originally on air',
    payload: frame([...CAPTION_REQUIRED, 'replay', 'originalTime'], { ...caption, replay: str(), originalTime: { type: 'integer' } }),
  },
  unsubscribed: {
    summary: 'The answer to an unsubscribe',
    payload: frame(['type', 'channel'], { type: { const: 'unsubscribed' }, channel: channelName }),
  },
  replayStarted: {
    summary: 'A replay began',
    payload: frame(['type', 'replay', 'channel', 'from', 'to', 'speed'], {
      type: { const: 'replay_started' },
      replay: str(),
      channel: channelName,
      from: { type: 'integer' },
      to: { type: 'integer' },
      speed: { type: 'number' },
    }),
  },
  replayEnd: {
    summary: 'A replay is done, or was stopped',
    payload: frame(['type', 'replay', 'channel', 'sent', 'stopped'], {
      type: { const: 'replay_end' },
      replay: str(),
      channel: channelName,
      sent: { type: 'integer' },
      stopped: { type: 'boolean' },
    }),
  },
  userEvent: {
    summary:
      'One of your own events on "user:<id>" (stream activations, uploads, encode steps and percent, AlertMatched): ' +
      'the Kafka event of that name (its Avro record as JSON)',
    payload: frame(['type', 'channel', 'position', 'event', 'data'], {
      type: { const: 'event' },
      channel: str('"user:<user id>"'),
      position: livePosition,
      event: {
        type: 'string',
        enum: [...TOPICS.streams.events, ...TOPICS.uploads.events, ...TOPICS.encodes.events, ...TOPICS.alerts.events],
      },
      data: { type: 'object' },
    }),
  },
  batch: {
    summary: 'For a subscription with "batch": true, several messages of one channel in one frame, in order',
    payload: frame(['type', 'channel', 'messages'], {
      type: { const: 'batch' },
      channel: channelName,
      messages: { type: 'array', items: { type: 'object', required: ['type'], properties: { type: str() } } },
    }),
  },
  error: {
    summary: 'A request was refused; the socket stays open',
    payload: frame(['type', 'code', 'message'], {
      type: { const: 'error' },
      code: {
        enum: [
          'bad_request',
          'invalid_channel',
          'invalid_position',
          'too_many_subscriptions',
          'too_many_replays',
          'forbidden',
          'unavailable',
        ],
      },
      field: str('The member of the frame at fault, or "frame"; absent only for unavailable'),
      message: str('Starts with the field'),
      channel: channelName,
    }),
  },
};

/**
 * The server's frames as one JSON Schema (the contract checker of the tests validates frames with
 * it): a frame must be one of the documented messages. anyOf, not oneOf: a replayed caption is also
 * a caption (frames may carry more members than a message requires).
 */
export function serverFrameSchema(): Schema {
  return { anyOf: Object.values(SERVER).map((m) => m.payload) };
}

const ceHeaders: Schema = {
  type: 'object',
  description: 'CloudEvents 1.0, Kafka protocol binding, binary mode (plus correlation and causation)',
  required: ['ce_specversion', 'ce_id', 'ce_type', 'ce_source', 'ce_time', 'correlation_id', 'content-type'],
  properties: {
    ce_specversion: { const: '1.0' },
    ce_id: str('A UUIDv7'),
    ce_type: str('The event name'),
    ce_source: str('Who produced it ("/stations/<id>", "/api/streams", …)'),
    ce_time: { type: 'string', format: 'date-time' },
    correlation_id: str(),
    causation_id: str('The id of the event that caused this one: set only when there is such a cause'),
    'content-type': { const: 'application/avro' },
    stream: str('For events decided through the event store: their aggregate stream'),
    stream_version: str('…and their version there; readers drop repeats by (stream, stream_version)'),
  },
};

/** The schema as written (with its docs and namespace), else its canonical form. */
function avroSchema(s: { file: string; canonical: string }): unknown {
  try {
    return JSON.parse(readFileSync(join(AVRO_DIR, s.file), 'utf8'));
  } catch {
    return JSON.parse(s.canonical);
  }
}

export function asyncApiDocument(registry: SchemaRegistry): Schema {
  const messages: Record<string, Schema> = {};
  const wsMessages = (group: Record<string, { summary: string; payload: Schema }>, prefix: string) =>
    Object.fromEntries(
      Object.entries(group).map(([name, m]) => {
        messages[`${prefix}${name[0]!.toUpperCase()}${name.slice(1)}`] = {
          name,
          summary: m.summary,
          contentType: 'application/json',
          payload: m.payload,
        };
        return [name, { $ref: `#/components/messages/${prefix}${name[0]!.toUpperCase()}${name.slice(1)}` }];
      }),
    );
  const channels: Record<string, Schema> = {
    live: {
      address: '/v1/live',
      title: 'Live captions and user events',
      description:
        `One WebSocket, up to ${MAX_SUBSCRIPTIONS} channel subscriptions; JSON text frames, a client's at most ${MAX_FRAME_BYTES} bytes. ` +
        `Close codes: ${CLOSE_SLOW_CONSUMER} slow consumer and ${CLOSE_RESTART} server restart (reconnect, resubscribe with since = ` +
        `your last position per channel), ${CLOSE_TOO_BIG} message too big, 1006 connection lost (reconnect with backoff).`,
      servers: [{ $ref: '#/servers/fanout' }],
      messages: { ...wsMessages(CLIENT, 'Client'), ...wsMessages(SERVER, 'Server') },
      bindings: {
        ws: {
          method: 'GET',
          query: {
            type: 'object',
            properties: { token: str('A user token (POST /v1/users/{userId}/token), for a user channel from a browser') },
          },
          headers: { type: 'object', properties: { 'x-userid': str('The user, as the trusted proxy names them') } },
        },
      },
    },
  };
  const operations: Record<string, Schema> = {};
  for (const name of Object.keys(CLIENT)) {
    operations[name] = {
      action: 'send',
      channel: { $ref: '#/channels/live' },
      summary: CLIENT[name]!.summary,
      messages: [{ $ref: `#/channels/live/messages/${name}` }],
    };
  }
  operations.receiveLive = {
    action: 'receive',
    channel: { $ref: '#/channels/live' },
    summary: 'What the server sends on /v1/live',
    messages: Object.keys(SERVER).map((name) => ({ $ref: `#/channels/live/messages/${name}` })),
  };

  const schemas = registry.all();
  for (const [topic, spec] of Object.entries(TOPICS) as [TopicName, (typeof TOPICS)[TopicName]][]) {
    const topicMessages: Record<string, Schema> = {};
    for (const event of spec.events) {
      for (const s of schemas.filter((x) => x.event === event)) {
        const id = `${event}V${s.version}`;
        messages[id] = {
          name: event,
          title: `${event} v${s.version}`,
          summary:
            `Avro single-object encoding (0xC3 0x01, fingerprint ${s.fingerprintHex}, body); ` +
            `the schema is also at /v1/schemas/${s.fingerprintHex}`,
          contentType: 'application/avro',
          headers: ceHeaders,
          payload: { schemaFormat: AVRO, schema: avroSchema(s) },
          bindings: { kafka: { key: { type: 'string', description: spec.key } } },
        };
        topicMessages[id] = { $ref: `#/components/messages/${id}` };
      }
    }
    channels[topic] = {
      address: topic,
      description:
        `Kafka topic (TOPIC_PREFIX + "${topic}"), ${spec.partitions} partitions, ` +
        `keyed by ${spec.key} (murmur2, as Kafka's Java client)`,
      servers: [{ $ref: '#/servers/kafka' }],
      messages: topicMessages,
      bindings: { kafka: { topic, partitions: spec.partitions } },
    };
    operations[`consume${topic[0]!.toUpperCase()}${topic.slice(1)}`] = {
      action: 'receive',
      channel: { $ref: `#/channels/${topic}` },
      summary: `Read the ${topic} topic`,
      messages: Object.keys(topicMessages).map((id) => ({ $ref: `#/channels/${topic}/messages/${id}` })),
    };
  }

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'castlog live and log',
      version: '1',
      description: 'The WebSocket /v1/live of the fanout (docs/live-protocol.md) and the Kafka topics castlog writes.',
    },
    servers: {
      fanout: { host: 'localhost:8081', protocol: 'ws', description: 'The fanout (FANOUT_PORT, or PUBLIC_LIVE_URL)' },
      kafka: { host: 'localhost:9092', protocol: 'kafka', description: 'The Kafka cluster (KAFKA_BROKERS)' },
    },
    channels,
    operations,
    components: { messages },
  };
}
