// Pieces of the route schemas (JSON Schema, OpenAPI 3.1 dialect) shared by several routes. They
// document the answers; they never change them: openapi.ts serializes with JSON.stringify, so a
// response schema drops no field. Named ones are added with app.addSchema and become
// components.schemas of /openapi.json.
import { CHANNEL_ID_RULE } from '../../domain/captions/channel.ts';
import { MAX_TEXT_CHARS, MODES } from '../../domain/captions/fragment.ts';

type Schema = Record<string, unknown>;

/** A reference to a named schema (NAMED below). */
export const ref = (id: keyof typeof NAMED): Schema => ({ $ref: `${id}#` });

const nullable = (type: string, extra: Schema = {}): Schema => ({ type: [type, 'null'], ...extra });
const ms = (description: string): Schema => ({ type: 'integer', minimum: 0, description: `${description} (ms since the epoch)` });
const obj = (properties: Record<string, Schema>, required: string[] = Object.keys(properties)): Schema => ({
  type: 'object',
  required,
  properties,
});

export const uuid: Schema = { type: 'string', format: 'uuid' };
export const position: Schema = { type: 'string', pattern: '^\\d+:-?\\d+$', description: 'A log position "partition:offset"' };

/** Named schemas: components.schemas of the document. */
export const NAMED = {
  Problem: {
    type: 'object',
    description: 'RFC 9457 problem details; "error" repeats "detail", "field" names the input at fault (every 4xx has one)',
    required: ['type', 'title', 'status', 'detail', 'error'],
    properties: {
      type: { type: 'string', const: 'about:blank' },
      title: { type: 'string' },
      status: { type: 'integer', minimum: 400, maximum: 599 },
      detail: { type: 'string' },
      error: { type: 'string' },
      field: { type: 'string' },
      allow: { type: 'string', description: 'On a 405: the methods the path has' },
    },
  },
  CanWatchError: {
    type: 'object',
    description: "canWatch's error shape, kept for its clients",
    required: ['status', 'error'],
    properties: {
      status: { type: 'string', const: 'ko' },
      error: { type: 'string' },
      field: { type: 'string' },
      limit: { type: 'integer' },
      active: { type: 'array', items: { type: 'string', format: 'uuid' } },
      allow: { type: 'string' },
    },
  },
  Fragment: {
    type: 'object',
    description: 'A caption fragment as a station sends it; members not listed are refused',
    required: ['seq', 'text', 'start', 'end'],
    additionalProperties: false,
    properties: {
      seq: { type: 'integer', minimum: 0, description: "The station's sequence number on this channel; a repeat is dropped" },
      text: { type: 'string', maxLength: MAX_TEXT_CHARS },
      start: ms('Start'),
      end: ms('End, not before start'),
      mode: nullable('string', { enum: [...MODES, null] }),
      lang: nullable('string', { description: 'A BCP 47 language tag' }),
    },
  },
  IngestAck: {
    description: 'The answer to one fragment (one NDJSON line, or one item of a JSON body)',
    oneOf: [
      obj({ seq: { type: 'integer' }, position }),
      obj({ line: { type: 'integer', minimum: 1 }, error: { type: 'string' }, seq: { type: 'integer' } }, ['line', 'error']),
    ],
  },
  IngestEnd: {
    type: 'object',
    description: 'The last NDJSON line of a stream the server ended: why (idle, the body cut short, the key removed)',
    required: ['error', 'field'],
    properties: { error: { type: 'string' }, field: { type: 'string' } },
  },
  CaptionItem: obj(
    {
      position,
      station: { type: 'string' },
      seq: { type: 'integer' },
      text: { type: 'string' },
      start: ms('Start'),
      end: ms('End'),
      mode: nullable('string'),
      lang: nullable('string'),
    },
    ['position', 'station', 'seq', 'text', 'start', 'end'],
  ),
  Alert: obj({
    alertId: uuid,
    query: { type: 'string' },
    channels: nullable('array', { items: { type: 'string' } }),
    lang: nullable('string'),
    email: nullable('string'),
    webhook: {
      oneOf: [{ type: 'null' }, obj({ url: { type: 'string', format: 'uri' }, secret: { type: 'string' } })],
      description: 'Where matches are posted, and the secret their signatures use',
    },
    createdAt: ms('Created'),
  }),
  Delivery: obj(
    {
      id: { type: 'integer' },
      kind: { type: 'string', enum: ['email', 'webhook'] },
      cause: { type: 'string' },
      alertId: nullable('string'),
      jobId: nullable('string'),
      target: { type: 'string' },
      state: { type: 'string' },
      attempts: { type: 'integer' },
      nextAttemptAt: nullable('integer'),
      createdAt: { type: 'integer' },
      sentAt: nullable('integer'),
      lastError: nullable('string'),
      attemptLog: {
        type: 'array',
        items: obj({
          attempt: { type: 'integer' },
          at: { type: 'integer' },
          durationMs: { type: 'integer' },
          status: nullable('integer'),
          error: nullable('string'),
        }),
      },
    },
    ['id', 'kind', 'cause', 'target', 'state', 'attempts', 'createdAt'],
  ),
  EncodeOptions: {
    type: 'object',
    description: 'Encode options; width, height and fps only (and all three) for a raw yuv420p upload',
    properties: {
      preset: { type: 'string' },
      qp: { type: 'integer' },
      container: { type: 'string', enum: ['mp4', 'mkv', 'hevc'] },
      logo: { type: 'boolean' },
      width: nullable('integer'),
      height: nullable('integer'),
      fps: nullable('number'),
    },
  },
} satisfies Record<string, Schema & { type?: unknown }>;

/**
 * Path parameters: plain strings, whatever they are documented to hold, so that fastify's validation
 * never answers for them: the handlers check them and word their errors (a malformed id is a 404).
 */
export const params = (properties: Record<string, Schema>): Schema => ({
  type: 'object',
  required: Object.keys(properties),
  properties: Object.fromEntries(
    Object.entries(properties).map(([name, { format, description }]) => [
      name,
      {
        type: 'string',
        ...(description || format ? { description: (description as string) ?? `A ${format === 'uuid' ? 'UUID' : format}` } : {}),
      },
    ]),
  ),
});
export const channelParam = { channel: { type: 'string', description: `A channel id: ${CHANNEL_ID_RULE}` } };

/** A JSON answer. */
export const json = (description: string, schema: Schema): Schema => ({ description, ...schema });
/** An answer of another media type (HTML, text, bytes). */
export const media = (description: string, types: string[], schema: Schema = { type: 'string' }): Schema => ({
  description,
  content: Object.fromEntries(types.map((t) => [t, { schema }])),
});
/** An answer without a body. */
export const empty = (description: string): Schema => ({ description, type: 'null' });

export const nullableString = nullable('string');
export const nullableInteger = nullable('integer');
export { obj, ms, nullable };

/** An ack of the JSON form of ingest: what was stored, what was refused. */
const ingestResult = obj(
  { accepted: { type: 'array', items: ref('IngestAck') }, rejected: { type: 'array', items: ref('IngestAck') }, error: { type: 'string' } },
  ['accepted', 'rejected'],
);

/**
 * POST /v1/channels/{channel}/captions. Documentation only (config.openapi): a body schema would
 * change how ingest checks fragments and words its answers.
 */
export const ingestDocs = {
  summary: 'Send caption fragments: a JSON body, or an NDJSON stream answered line by line',
  description:
    'application/x-ndjson: one fragment per line, for as long as the station likes; every line read gets an answer line ' +
    '(IngestAck), in order, once Kafka has it (acks=all) or refused it; a stream the server ends gets a last line saying why ' +
    '(IngestEnd). application/json: one fragment or an array of them, answered at once.',
  params: params(channelParam),
  body: {
    content: {
      'application/x-ndjson': { schema: { ...ref('Fragment'), description: 'The schema of each line' } },
      'application/json': { schema: { oneOf: [ref('Fragment'), { type: 'array', minItems: 1, items: ref('Fragment') }] } },
    },
  },
  response: {
    200: {
      description: 'NDJSON: a stream of answer lines (each an IngestAck, the last one maybe an IngestEnd); JSON: the results',
      content: {
        'application/x-ndjson': { schema: { oneOf: [ref('IngestAck'), ref('IngestEnd')], description: 'The schema of each line' } },
        'application/json': { schema: ingestResult },
      },
    },
    400: {
      description: 'No fragment of a JSON body was valid (each is named in rejected), or a bad request',
      content: { 'application/json': { schema: ingestResult }, 'application/problem+json': { schema: ref('Problem') } },
    },
  },
};
