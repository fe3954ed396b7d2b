// Every Avro schema by fingerprint, so an outside consumer can decode the topics without our code:
// read the 8 bytes after 0xC3 0x01, look the schema up here, decode the rest.
import type { FastifyPluginAsync } from 'fastify';
import { TOPICS, topicOf } from '../../schemas/catalog.ts';
import type { SchemaRegistry } from '../../schemas/registry.ts';
import type { EventType } from '../../schemas/types.generated.ts';
import { HttpError } from './errors.ts';
import { json, nullableString, obj, params } from './api-schemas.ts';

export function schemaRoutes(deps: { registry: SchemaRegistry }): FastifyPluginAsync {
  const known = new Set(Object.values(TOPICS).flatMap((t) => [...t.events]));
  const list = deps.registry.all().map((s) => ({
    fingerprint: s.fingerprintHex,
    event: s.event,
    version: s.version,
    topic: known.has(s.event as EventType) ? topicOf(s.event as EventType) : null,
    schema: JSON.parse(s.canonical) as unknown,
  }));
  list.sort((a, b) => a.event.localeCompare(b.event) || a.version - b.version);

  const schema = obj({
    fingerprint: { type: 'string', pattern: '^[0-9a-f]{16}$' },
    event: { type: 'string' },
    version: { type: 'integer' },
    topic: nullableString,
    schema: { type: 'object', description: 'The Avro schema, in Parsing Canonical Form' },
  });
  return async (app) => {
    const summary = 'Every Avro schema of the topics, by fingerprint';
    const listSchema = obj({ encoding: { type: 'string' }, schemas: { type: 'array', items: schema } });
    app.get('/', { schema: { summary, response: { 200: json('The schemas', listSchema) } } }, async () => ({
      encoding: 'Avro single-object encoding: 0xC3 0x01, the 8-byte little-endian CRC-64-AVRO fingerprint, then the body',
      schemas: list,
    }));
    const one = {
      summary: 'One Avro schema by its CRC-64-AVRO fingerprint (16 hex digits)',
      params: params({ fingerprint: { type: 'string' } }),
      response: { 200: json('The schema', schema) },
    };
    app.get<{ Params: { fingerprint: string } }>('/:fingerprint', { schema: one }, async (req) => {
      const s = list.find((x) => x.fingerprint === req.params.fingerprint.toLowerCase());
      if (!s) throw new HttpError(404, `fingerprint: no schema with fingerprint ${req.params.fingerprint} (16 hex digits)`, 'fingerprint');
      return s;
    });
  };
}
