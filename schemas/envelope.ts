// CloudEvents Kafka protocol binding, binary mode: attributes travel as ce_* headers,
// the value is the Avro single-object encoded event.
import { randomFillSync } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';

export interface EventMeta {
  id: string;
  type: string;
  source: string;
  time: string;
  correlationId: string;
  causationId: string | null;
  /** For events decided through the event store: their aggregate stream and version there.
   *  The relay publishes at least once; readers drop repeats by (stream, streamVersion). */
  stream?: string;
  streamVersion?: number;
}

// uuid asks the platform for 16 random bytes per id, a tenth of the CPU of an append: ids take
// theirs from a pool filled 256 ids at a time, and keep v7's order within a millisecond (a counter
// started at random each new millisecond, as uuid's own state does).
const POOL_BYTES = 16 * 256;
let pool = Buffer.alloc(0);
let used = POOL_BYTES;
const v7 = { msecs: -1, seq: 0 };

function eventId(): string {
  if (used + 16 > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_BYTES));
    used = 0;
  }
  const random = pool.subarray(used, (used += 16));
  const now = Date.now();
  if (now > v7.msecs) Object.assign(v7, { msecs: now, seq: random.readUInt32BE(6) & 0x7fffffff });
  else if ((v7.seq = (v7.seq + 1) | 0) === 0) v7.msecs++; // the counter wrapped: move the clock on, as uuid does
  return uuidv7({ random, msecs: v7.msecs, seq: v7.seq });
}

/** The time now as ISO 8601, formatted once per millisecond (a busy ingest makes dozens of events in one). */
const clock = { ms: -1, iso: '' };
function isoNow(): string {
  const ms = Date.now();
  if (ms !== clock.ms) Object.assign(clock, { ms, iso: new Date(ms).toISOString() });
  return clock.iso;
}

export function newMeta(type: string, source: string, correlationId?: string, causationId?: string): EventMeta {
  const id = eventId();
  return { id, type, source, time: isoNow(), correlationId: correlationId ?? id, causationId: causationId ?? null };
}

export function toHeaders(meta: EventMeta): Record<string, string> {
  const headers: Record<string, string> = {
    ce_specversion: '1.0',
    ce_id: meta.id,
    ce_type: meta.type,
    ce_source: meta.source,
    ce_time: meta.time,
    correlation_id: meta.correlationId,
    'content-type': 'application/avro',
  };
  if (meta.causationId) headers.causation_id = meta.causationId;
  if (meta.stream !== undefined) headers.stream = meta.stream;
  if (meta.streamVersion !== undefined) headers.stream_version = String(meta.streamVersion);
  return headers;
}

/** As kafkajs hands them over: a header may repeat, and Kafka allows one without a value (null). */
type RawHeaders = Record<string, Buffer | string | null | (Buffer | string | null)[] | undefined>;

export function fromHeaders(headers: RawHeaders | undefined): EventMeta {
  const stream = header(headers, 'stream');
  return {
    id: header(headers, 'ce_id') ?? '',
    type: header(headers, 'ce_type') ?? '',
    source: header(headers, 'ce_source') ?? '',
    time: header(headers, 'ce_time') ?? '',
    correlationId: header(headers, 'correlation_id') ?? '',
    causationId: header(headers, 'causation_id') ?? null,
    ...(stream !== undefined ? { stream, streamVersion: Number(header(headers, 'stream_version')) } : {}),
  };
}

function header(headers: RawHeaders | undefined, k: string): string | undefined {
  const v = headers?.[k];
  const one = Array.isArray(v) ? v[0] : v;
  return one == null ? undefined : one.toString();
}
