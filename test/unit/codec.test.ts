// Events on the wire: Avro single-object encoding, readable by any consumer from the bytes alone,
// and still readable after the schema gains a field.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AvroCodec, CodecError } from '../../schemas/codec.ts';
import { fingerprintBytes } from '../../schemas/crc64avro.ts';
import { AVRO_DIR, SchemaRegistry, parseSchema } from '../../schemas/registry.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';

const fragment: CaptionFragmentReceived = {
  channel: 'news.one',
  station: 'studio-a',
  seq: 9_007_199_254_740_990, // the largest long avsc writes
  text: 'Olá, 世界 😀',
  start: 1_700_000_000_000,
  end: 1_700_000_000_750,
  mode: 'popon',
  lang: 'pt-BR',
  receivedAt: 1_700_000_000_900,
};

const codec = new AvroCodec();
const latest = codec.registry.latest('CaptionFragmentReceived');

describe('AvroCodec', () => {
  it('round trips a CaptionFragmentReceived, nulls included', () => {
    expect(codec.decode(codec.encode('CaptionFragmentReceived', fragment))).toEqual({
      type: 'CaptionFragmentReceived',
      version: latest.version,
      data: fragment,
    });
    const sparse = { ...fragment, mode: null, lang: null, text: '' };
    expect(codec.decode(codec.encode('CaptionFragmentReceived', sparse)).data).toEqual(sparse);
  });

  it('writes C3 01, then the CRC-64-AVRO fingerprint of the schema’s canonical form, then the Avro body', () => {
    const bytes = codec.encode('CaptionFragmentReceived', fragment);
    expect([...bytes.subarray(0, 2)]).toEqual([0xc3, 0x01]);
    expect(bytes.subarray(2, 10)).toEqual(fingerprintBytes(latest.canonical));
    expect(latest.type.fromBuffer(bytes.subarray(10))).toEqual(fragment);
    expect(codec.writerOf(bytes)).toBe(latest);
  });

  it('writes what avsc writes, for events small and larger than its scratch buffer, each in bytes of its own', () => {
    const avsc = (data: CaptionFragmentReceived) =>
      Buffer.concat([Buffer.from([0xc3, 0x01]), latest.fingerprint, latest.type.toBuffer(data)]);
    const small = codec.encode('CaptionFragmentReceived', fragment);
    // A caption at its limit: 4,000 UTF-16 units, 8 KB of UTF-8.
    const large = { ...fragment, text: '😀'.repeat(2000) };
    const big = codec.encode('CaptionFragmentReceived', large);
    const after = codec.encode('CaptionFragmentReceived', { ...fragment, text: 'after' });
    expect(small).toEqual(avsc(fragment));
    expect(big).toEqual(avsc(large));
    expect(after).toEqual(avsc({ ...fragment, text: 'after' }));
    const snippet = '世'.repeat(40_000); // 120 KB: encoded past the scratch buffer
    const match = { alertId: 'a', userId: 'u', channel: 'c', position: '0:1', station: 's', start: 0, text: 't', snippet, at: 1 };
    expect(codec.decode(codec.encode('AlertMatched', match)).data).toMatchObject({ snippet });
  });

  it('refuses to encode data that does not fit the schema', () => {
    expect(() => codec.encode('CaptionFragmentReceived', { ...fragment, text: undefined } as never)).toThrow();
    expect(() => codec.encode('CaptionFragmentReceived', { ...fragment, mode: 'scroll' } as never)).toThrow();
  });
});

describe('AvroCodec.decode of bytes that are not a known event throws CodecError', () => {
  const good = codec.encode('CaptionFragmentReceived', fragment);
  const header = good.subarray(0, 10);

  it.each<[string, Buffer]>([
    ['no bytes', Buffer.alloc(0)],
    ['one byte', Buffer.from([0xc3])],
    ['JSON', Buffer.from(JSON.stringify(fragment))],
    ['the wrong marker', Buffer.concat([Buffer.from([0xc3, 0x02]), good.subarray(2)])],
    ['a header cut short', good.subarray(0, 9)],
    ['an unknown fingerprint', Buffer.concat([Buffer.from([0xc3, 0x01]), Buffer.alloc(8), good.subarray(10)])],
  ])('%s', (_name, bytes) => {
    expect(() => codec.decode(bytes)).toThrow(CodecError);
  });

  it('names the unknown fingerprint', () => {
    const bytes = Buffer.concat([Buffer.from([0xc3, 0x01]), Buffer.from('0011223344556677', 'hex'), good.subarray(10)]);
    expect(() => codec.decode(bytes)).toThrow(/0011223344556677/);
  });

  // A known header over a damaged body must be a CodecError too, so callers can tell a poison message
  // from a bug; today avsc's own Error ('truncated buffer', 'trailing data', ...) escapes instead.
  it.each<[string, Buffer]>([
    ['a known header and no body', header],
    ['a body cut short', good.subarray(0, good.length - 1)],
    ['trailing bytes after the body', Buffer.concat([good, Buffer.from([0])])],
    // channel "a", station "b", seq 0, text "", start 0, end 0, then:
    ['a mode enum index out of range', Buffer.concat([header, Buffer.from([2, 0x61, 2, 0x62, 0, 0, 0, 0, 2, 0x0a, 0, 0])])],
    ['a union branch that does not exist', Buffer.concat([header, Buffer.from([2, 0x61, 2, 0x62, 0, 0, 0, 0, 4, 0, 0])])],
    [
      'a long past 2^53',
      Buffer.concat([
        header,
        Buffer.from([2, 0x61, 2, 0x62, 0, 0, 0, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
      ]),
    ],
  ])('%s', (_name, bytes) => {
    expect(() => codec.decode(bytes)).toThrow(CodecError);
  });

  it('random bodies behind a known header either decode or throw CodecError, nothing else', () => {
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.concat([header, randomBytes(i % 64)]);
      try {
        codec.decode(bytes);
      } catch (err) {
        expect(err, `body ${bytes.subarray(10).toString('hex')}`).toBeInstanceOf(CodecError);
      }
    }
  });
});

describe('AvroCodec reads an older writer version into the latest shape', () => {
  const v1Schema = JSON.parse(readFileSync(join(AVRO_DIR, 'captions/CaptionFragmentReceived.v1.avsc'), 'utf8')) as {
    fields: unknown[];
  };
  const v2Schema = { ...v1Schema, fields: [...v1Schema.fields, { name: 'speaker', type: ['null', 'string'], default: null }] };
  const v3Schema = { ...v2Schema, fields: [...v2Schema.fields, { name: 'confidence', type: 'double', default: 1 }] };
  const v1 = parseSchema('CaptionFragmentReceived', 1, 'v1', v1Schema);
  const v2 = parseSchema('CaptionFragmentReceived', 2, 'v2', v2Schema);
  const v3 = parseSchema('CaptionFragmentReceived', 3, 'v3', v3Schema);
  // Given in any order: the registry sorts versions.
  const evolved = new AvroCodec(new SchemaRegistry([v3, v1, v2]));
  const writtenBy = (v: typeof v1, data: object) => Buffer.concat([Buffer.from([0xc3, 0x01]), v.fingerprint, v.type.toBuffer(data)]);

  it('fills a field v1 did not have with its default, and reports the writer version', () => {
    const decoded = evolved.decode(writtenBy(v1, fragment));
    expect(decoded.version).toBe(1);
    expect(decoded.data).toEqual({ ...fragment, speaker: null, confidence: 1 });
  });

  it('keeps a value written by a newer version', () => {
    const decoded = evolved.decode(writtenBy(v2, { ...fragment, speaker: 'Ann' }));
    expect(decoded.version).toBe(2);
    expect(decoded.data).toEqual({ ...fragment, speaker: 'Ann', confidence: 1 });
  });

  it('encodes with the latest version and decodes it unchanged', () => {
    const data = { ...fragment, speaker: 'Bo', confidence: 0.5 };
    const bytes = evolved.encode('CaptionFragmentReceived', data as never);
    expect(bytes.subarray(2, 10)).toEqual(v3.fingerprint);
    expect(evolved.decode(bytes)).toEqual({ type: 'CaptionFragmentReceived', version: 3, data });
  });

  it('decodes many v1 messages the same way (the resolver is reused)', () => {
    for (let seq = 0; seq < 100; seq++) {
      expect(evolved.decode(writtenBy(v1, { ...fragment, seq })).data).toEqual({ ...fragment, seq, speaker: null, confidence: 1 });
    }
  });

  it('does not know a fingerprint that is not in its registry', () => {
    const onlyV1 = new AvroCodec(new SchemaRegistry([v1]));
    expect(() => onlyV1.decode(writtenBy(v2, { ...fragment, speaker: null }))).toThrow(CodecError);
  });
});
