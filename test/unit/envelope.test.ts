// Every event travels with CloudEvents attributes as Kafka headers (binary mode).
import { describe, expect, it } from 'vitest';
import type { KafkaMessage } from 'kafkajs';
import { decodeRecord } from '../../infra/kafka/consumer.ts';
import { AvroCodec } from '../../schemas/codec.ts';
import { fromHeaders, newMeta, toHeaders, type EventMeta } from '../../schemas/envelope.ts';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
/** Kafka hands headers back as Buffers. */
const asKafka = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Buffer.from(v)]));

describe('newMeta + toHeaders', () => {
  it('carries the CloudEvents attributes, a correlation id and the content type', () => {
    const before = Date.now();
    const headers = toHeaders(newMeta('CaptionFragmentReceived', '/stations/studio-a'));
    const after = Date.now();

    expect(headers.ce_specversion).toBe('1.0');
    expect(headers.ce_id).toMatch(UUID_V7);
    expect(headers.ce_type).toBe('CaptionFragmentReceived');
    expect(headers.ce_source).toBe('/stations/studio-a');
    expect(headers['content-type']).toBe('application/avro');
    expect(headers.correlation_id, 'a new flow is its own correlation').toBe(headers.ce_id);
    expect(headers).not.toHaveProperty('causation_id');

    const time = headers.ce_time!;
    expect(new Date(time).toISOString(), 'ce_time is ISO 8601 UTC').toBe(time);
    expect(Date.parse(time)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(time)).toBeLessThanOrEqual(after);
    // A UUIDv7 starts with its creation time in milliseconds.
    const idMs = parseInt(headers.ce_id!.replace(/-/g, '').slice(0, 12), 16);
    expect(idMs).toBeGreaterThanOrEqual(before);
    expect(idMs).toBeLessThanOrEqual(after);
  });

  it('keeps the given correlation and causation ids', () => {
    const headers = toHeaders(newMeta('CaptionFragmentReceived', '/api', 'corr-1', 'cause-2'));
    expect(headers.correlation_id).toBe('corr-1');
    expect(headers.causation_id).toBe('cause-2');
    expect(headers.ce_id).not.toBe('corr-1');
  });

  it('gives every event its own id, in creation order', () => {
    const ids = Array.from({ length: 1000 }, () => newMeta('T', '/s').id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });

  it('has only string values, as Kafka headers need', () => {
    for (const v of Object.values(toHeaders(newMeta('T', '/s', 'c', 'd')))) expect(typeof v).toBe('string');
  });
});

describe('fromHeaders', () => {
  const meta: EventMeta = {
    id: '01890a5d-ac96-774b-bcce-b302099a8057',
    type: 'CaptionFragmentReceived',
    source: '/stations/estação-1',
    time: '2024-05-01T12:34:56.789Z',
    correlationId: 'corr',
    causationId: 'cause',
  };

  it('round trips through Kafka’s Buffer headers', () => {
    expect(fromHeaders(asKafka(toHeaders(meta)))).toEqual(meta);
    expect(fromHeaders(asKafka(toHeaders({ ...meta, causationId: null })))).toEqual({ ...meta, causationId: null });
    const fresh = newMeta('T', '/s');
    expect(fromHeaders(asKafka(toHeaders(fresh)))).toEqual(fresh);
  });

  it('round trips the event-store stream and version of a decided event', () => {
    const decided: EventMeta = { ...meta, stream: 'user-42', streamVersion: 7 };
    const headers = toHeaders(decided);
    expect(headers).toMatchObject({ stream: 'user-42', stream_version: '7' });
    expect(fromHeaders(asKafka(headers))).toEqual(decided);
    expect(toHeaders(meta)).not.toHaveProperty('stream');
  });

  it('reads string headers and the first of repeated ones', () => {
    expect(fromHeaders(toHeaders(meta))).toEqual(meta);
    const repeated = { ...asKafka(toHeaders(meta)), ce_id: [Buffer.from('first'), Buffer.from('second')] };
    expect(fromHeaders(repeated).id).toBe('first');
  });

  it('reads a header without a value (Kafka allows one) as absent, not as an exception', () => {
    const headers = { ...asKafka(toHeaders(meta)), causation_id: null, correlation_id: [null, Buffer.from('second')] };
    expect(fromHeaders(headers)).toEqual({ ...meta, causationId: null, correlationId: '' });
  });

  it('gives empty values, not an exception, for a message without headers', () => {
    const empty = { id: '', type: '', source: '', time: '', correlationId: '', causationId: null };
    expect(fromHeaders(undefined)).toEqual(empty);
    expect(fromHeaders({})).toEqual(empty);
  });
});

describe('a decoded record', () => {
  it('has the attributes its headers carry, and keeps them when written as JSON', () => {
    const codec = new AvroCodec();
    const meta = { ...newMeta('UserIdIssued', '/test'), stream: 'user-7', streamVersion: 3 };
    const message = {
      offset: '41',
      key: Buffer.from('u7'),
      value: codec.encode('UserIdIssued', { userId: 'u7', at: 1_700_000_000_000 }),
      timestamp: '1700000000123',
      headers: asKafka(toHeaders(meta)),
      attributes: 0,
    } as unknown as KafkaMessage;
    const record = decodeRecord(codec, 'streams', 2, message);
    expect(record.meta).toEqual(meta);
    expect(record.meta, 'read once').toBe(record.meta);
    expect(JSON.parse(JSON.stringify(record))).toEqual({
      topic: 'streams',
      partition: 2,
      offset: 41,
      key: 'u7',
      timestamp: 1_700_000_000_123,
      meta,
      event: { type: 'UserIdIssued', version: 1, data: { userId: 'u7', at: 1_700_000_000_000 } },
    });
  });
});
