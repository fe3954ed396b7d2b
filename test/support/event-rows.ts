// Rows as the event store writes them, for tests and benches that append behind its back (a
// transaction held open, transaction ids chosen by hand, an event timed from its commit).
import type { AvroCodec } from '../../schemas/codec.ts';
import { newMeta } from '../../schemas/envelope.ts';
import { viewerStream } from '../../domain/streams/viewer.ts';

export const INSERT_EVENT = 'INSERT INTO events (stream, version, type, key, data, meta) VALUES ($1, $2, $3, $4, $5, $6::jsonb)';

/** The parameters of INSERT_EVENT for a user id issued: version 1 of the user's stream unless said. */
export function issuedRow(codec: AvroCodec, userId: string, key: string, version = 1): unknown[] {
  const stream = viewerStream(userId);
  const meta = { ...newMeta('UserIdIssued', 'test'), stream, streamVersion: version };
  return [stream, version, 'UserIdIssued', key, codec.encode('UserIdIssued', { userId, at: Date.now() }), JSON.stringify(meta)];
}
