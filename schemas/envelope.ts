// CloudEvents Kafka protocol binding, binary mode: attributes travel as ce_* headers,
// the value is the Avro single-object encoded event.
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

export function newMeta(type: string, source: string, correlationId?: string, causationId?: string): EventMeta {
  const id = uuidv7();
  return { id, type, source, time: new Date().toISOString(), correlationId: correlationId ?? id, causationId: causationId ?? null };
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

type RawHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

export function fromHeaders(headers: RawHeaders | undefined): EventMeta {
  const get = (k: string): string | undefined => {
    const v = headers?.[k];
    const one = Array.isArray(v) ? v[0] : v;
    return one === undefined ? undefined : one.toString();
  };
  return {
    id: get('ce_id') ?? '',
    type: get('ce_type') ?? '',
    source: get('ce_source') ?? '',
    time: get('ce_time') ?? '',
    correlationId: get('correlation_id') ?? '',
    causationId: get('causation_id') ?? null,
    ...(get('stream') !== undefined ? { stream: get('stream'), streamVersion: Number(get('stream_version')) } : {}),
  };
}
