// kafkajs as patched (patches/kafkajs+*.patch): its producer groups a batch's messages by partition
// in place (it copied a partition's list per message) and makes each record from the message's
// fields (it copied each message). Its record encoder writes a
// record's headers straight into one buffer of the record's size (it made an encoder, 512 zeroed
// bytes, per header): the bytes must be the ones the protocol says, as before. The decoder fills
// one object in place (it spread a new one per header, the largest self time of a consumer): a
// record's headers come back as written; the original turned a header named `toString` into
// [Object's toString, value], so these fail if the patch is missing. And the decoder steps over a
// record's headers, decoding them when first read (a string and a buffer per header were most of
// the objects a consumed record cost, and most consumers never read them): every record of a batch,
// plain or compressed, must still come back whole. Offsets and timestamps are added in numbers where
// exact (it made Longs per record): they must be what int64 arithmetic gives, at any size. The
// encoder writes varints straight into its buffer (it made an array and a Buffer per varint), a
// record into memory not zeroed first, of the size it counted, and the batch checksum eight bytes a
// step: against references written here from the protocol, for generated records and buffers.
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

type Header = { key: string; value: Buffer | string | null };
interface Encoder {
  writeUVarInt(v: number): Encoder;
  writeInt8(v: number): Encoder;
  writeVarLong(v: number): Encoder;
  writeVarInt(v: number): Encoder;
  writeVarIntBytes(v: Buffer | string | null): Encoder;
  writeVarIntArray(items: Encoder[]): Encoder;
  buffer: Buffer;
}
interface Decoder {
  readVarIntBytes(): Buffer;
  offset: number;
}
type Decoded = { offset: string; key: Buffer; value: Buffer; headers: Record<string, unknown> };
const require = createRequire(import.meta.url);
const protocol = 'kafkajs/src/protocol';
const Encoder = require(`${protocol}/encoder`) as (new () => Encoder) & {
  exactly(size: number): Encoder & { offset: number; buf: Buffer };
  sizeOfVarInt(v: number): number;
  sizeOfVarLong(v: unknown): number;
};
const crc32C = require(`${protocol}/recordBatch/crc32C/crc32C`) as (b: Buffer) => number;
const Decoder = require(`${protocol}/decoder`) as new (b: Buffer) => Decoder;
const HeaderEncoder = require(`${protocol}/recordBatch/header/v0`) as (h: Header) => Encoder;
const encodeRecord = require(`${protocol}/recordBatch/record/v0`) as (r: {
  offsetDelta: number;
  timestampDelta: number;
  key: string | Buffer | null;
  value: string | Buffer | null;
  headers: Record<string, string | Buffer | (string | Buffer)[]>;
}) => Encoder;
const decodeRecord = require(`${protocol}/recordBatch/record/v0/decoder`) as (decoder: Decoder, context: object) => Decoded;
const { RecordBatch } = require(`${protocol}/recordBatch/v0`) as {
  RecordBatch: (b: { compression?: number; firstOffset?: unknown; records: Encoder[] }) => Promise<Encoder>;
};
const decodeBatch = require(`${protocol}/recordBatch/v0/decoder`) as (d: Decoder) => Promise<{ records: Decoded[] }>;
const { Types: Compression } = require(`${protocol}/message/compression`) as { Types: { None: number; GZIP: number } };
const Long = require('kafkajs/src/utils/long') as { fromValue: (v: number) => unknown };
type Message = { key: string; value: string; partition: number };
const groupMessagesPerPartition = require('kafkajs/src/producer/groupMessagesPerPartition') as (args: {
  topic: string;
  partitionMetadata: unknown[];
  messages: Message[];
  partitioner: (args: { message: Message }) => number;
}) => Record<string, Message[]>;

/** A record as the protocol lays it out, each header through kafkajs's own header encoder: its length, then its body. */
function record(headers: Header[], value = 'value'): Buffer {
  const body = new Encoder()
    .writeInt8(0)
    .writeVarLong(5)
    .writeVarInt(2)
    .writeVarIntBytes('key')
    .writeVarIntBytes(value)
    .writeVarIntArray(headers.map(HeaderEncoder)).buffer;
  return Buffer.concat([new Encoder().writeVarInt(body.length).buffer, body]);
}

/** Reads one length-prefixed record, as the batch decoder does. */
const read = (bytes: Buffer): Decoded =>
  decodeRecord(new Decoder(new Decoder(bytes).readVarIntBytes()), { firstOffset: '40', firstTimestamp: '1000', magicByte: 2 });

const decode = (headers: Header[]) => read(record(headers));

describe('kafkajs producer batches', () => {
  it('are grouped by partition, each partition its messages in the order given', () => {
    const messages = Array.from({ length: 1000 }, (_, i) => ({ key: `k${i % 7}`, value: `v${i}`, partition: (i * 7919) % 6 }));
    const grouped = groupMessagesPerPartition({
      topic: 't',
      partitionMetadata: [{}, {}, {}, {}, {}, {}],
      messages,
      partitioner: ({ message }) => message.partition,
    });
    expect(Object.keys(grouped).sort()).toEqual(['0', '1', '2', '3', '4', '5']);
    for (const [partition, list] of Object.entries(grouped))
      expect(list).toEqual(messages.filter((m) => m.partition === Number(partition)));
    expect(groupMessagesPerPartition({ topic: 't', partitionMetadata: [], messages, partitioner: () => 0 })).toEqual({});
  });
});

describe('kafkajs records', () => {
  it('are written as the protocol says: each header name and value, a repeated name once per value, in order', () => {
    const headers = { ce_id: 'a', x: ['1', '2', '3'], 'content-type': 'application/avro', empty: '' };
    const written = encodeRecord({ offsetDelta: 2, timestampDelta: 5, key: 'key', value: 'value', headers }).buffer;
    expect(written).toEqual(
      record([
        { key: 'ce_id', value: 'a' },
        { key: 'x', value: '1' },
        { key: 'x', value: '2' },
        { key: 'x', value: '3' },
        { key: 'content-type', value: 'application/avro' },
        { key: 'empty', value: '' },
      ]),
    );
    // Larger than any encoder's starting size, and multi-byte text.
    const big = 'värde '.repeat(20_000);
    const large = encodeRecord({ offsetDelta: 2, timestampDelta: 5, key: 'key', value: big, headers: { h: big } }).buffer;
    expect(large).toEqual(record([{ key: 'h', value: big }], big));
    expect(String(read(large).headers.h)).toBe(big);
  });

  it('come back with their headers as written: one value per name, repeats as an array in order, no value as null', () => {
    const r = decode([
      { key: 'ce_id', value: 'a' },
      { key: 'x', value: '1' },
      { key: 'ce_type', value: 'T' },
      { key: 'x', value: '2' },
      { key: 'x', value: '3' },
      { key: 'empty', value: null },
      { key: 'empty', value: 'then' },
    ]);
    expect(r.offset).toBe('42');
    expect(r.value.toString()).toBe('value');
    expect(Object.keys(r.headers)).toEqual(['ce_id', 'x', 'ce_type', 'empty']);
    const text = (v: unknown) => (Array.isArray(v) ? v.map((b) => (b === null ? null : String(b))) : v === null ? null : String(v));
    expect(Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, text(v)]))).toEqual({
      ce_id: 'a',
      x: ['1', '2', '3'],
      ce_type: 'T',
      empty: [null, 'then'],
    });
    expect(decode([]).headers).toEqual({});
  });

  it("have headers named like Object's own members, or __proto__, as headers like any other", () => {
    const r = decode([
      { key: 'toString', value: 'ts' },
      { key: 'constructor', value: 'c' },
      { key: '__proto__', value: 'p1' },
      { key: '__proto__', value: 'p2' },
      { key: 'hasOwnProperty', value: 'h' },
    ]);
    expect(Object.getPrototypeOf(r.headers)).toBe(Object.prototype);
    expect(Object.keys(r.headers)).toEqual(['toString', 'constructor', '__proto__', 'hasOwnProperty']);
    expect(String(r.headers.toString)).toBe('ts');
    expect(String(r.headers.constructor)).toBe('c');
    expect((Object.getOwnPropertyDescriptor(r.headers, '__proto__')?.value as Buffer[]).map(String)).toEqual(['p1', 'p2']);
    expect(String(r.headers.hasOwnProperty)).toBe('h');
  });

  it.each([
    ['plain', Compression.None],
    ['gzip', Compression.GZIP],
  ])('of a %s batch come back whole, each header as written when read, in any order of reading', async (_, compression) => {
    const written = Array.from({ length: 50 }, (_, i): Parameters<typeof encodeRecord>[0] => ({
      offsetDelta: i,
      timestampDelta: i * 3,
      key: `key-${i}`,
      value: `value ${i} `.repeat(i % 7),
      headers: i % 5 === 0 ? {} : { ce_id: `id-${i}`, ce_type: 'T', x: Array.from({ length: i % 3 }, (_, j) => `${i}.${j}`) },
    }));
    const batch = await RecordBatch({ compression, firstOffset: Long.fromValue(1000), records: written.map(encodeRecord) });
    const { records } = await decodeBatch(new Decoder(batch.buffer));
    expect(records).toHaveLength(written.length);
    const text = (v: unknown) => (Array.isArray(v) ? v.map(String) : String(v));
    // Every other record's headers read first, from the last: each record's are its own however they are read.
    for (const i of written.keys()) if (i % 2 === 1) void records.at(-i)!.headers;
    records.forEach((r, i) => {
      const w = written[i]!;
      expect({ offset: r.offset, key: String(r.key), value: String(r.value) }).toEqual({
        offset: String(1000 + i),
        key: w.key,
        value: w.value,
      });
      const expected = Object.fromEntries(Object.entries(w.headers).filter(([, v]) => !Array.isArray(v) || v.length));
      expect(Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, text(v)])), `record ${i}`).toEqual(
        Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, Array.isArray(v) && v.length === 1 ? v[0] : v])),
      );
      // Read once: the same object every time after.
      expect(r.headers).toBe(r.headers);
    });
  });

  it('have headers a consumer may set, and are otherwise the fields they were', () => {
    const r = decode([{ key: 'ce_id', value: 'a' }]);
    expect(Object.keys(r)).toEqual(['magicByte', 'attributes', 'timestamp', 'offset', 'key', 'value', 'isControlRecord', 'batchContext']);
    r.headers = { replaced: Buffer.from('yes') };
    expect(String(r.headers.replaced)).toBe('yes');
    // Stepped over, not left behind: the decoder ends where the record does, as when it read them.
    const bytes = new Decoder(
      record([
        { key: 'a', value: 'b' },
        { key: 'none', value: null },
        { key: 'c', value: '' },
      ]),
    ).readVarIntBytes();
    const decoder = new Decoder(bytes);
    decodeRecord(decoder, { firstOffset: '0', firstTimestamp: '0', magicByte: 2 });
    expect(decoder.offset).toBe(bytes.length);
  });

  it('have the offset and timestamp int64 arithmetic gives, in numbers where exact and beyond', () => {
    const deltas = [0, 1, -1, 63, -64, 64, 8191, -8192, 2 ** 31, -(2 ** 31), 2 ** 48 - 1, -(2 ** 48), 2 ** 49, -(2 ** 49) - 1, 2 ** 52 + 3];
    const firsts = ['0', '1700000000000', '-1', String(2 ** 53 - 10), '9007199254740993', '9223372036854775000', '-9223372036854775000'];
    for (const first of firsts) {
      for (const [i, delta] of deltas.entries()) {
        const offsetDelta = i * 1000 - 5000; // a varint
        const body = new Encoder()
          .writeInt8(0)
          .writeVarLong(delta)
          .writeVarInt(offsetDelta)
          .writeVarIntBytes('k')
          .writeVarIntBytes('v')
          .writeVarInt(0).buffer;
        const d = new Decoder(body);
        const r = decodeRecord(d, { firstOffset: first, firstTimestamp: first, magicByte: 2 }) as Decoded & { timestamp: string };
        const exact = (n: number) => (BigInt(first) + BigInt(n)).toString(); // as kafkajs's Long (a BigInt) adds
        expect({ timestamp: r.timestamp, offset: r.offset }, `${first} + ${delta} / ${offsetDelta}`).toEqual({
          timestamp: exact(delta),
          offset: exact(offsetDelta),
        });
        expect(d.offset).toBe(body.length);
      }
    }
  });
});

// The protocol's varints, from its description (seven bits a byte, low first; signed ones zigzag
// first), in BigInt so that nothing here shares kafkajs's arithmetic.
function leb128(u: bigint): Buffer {
  const out: number[] = [];
  for (; u >= 0x80n; u >>= 7n) out.push(Number(u & 0x7fn) | 0x80);
  out.push(Number(u));
  return Buffer.from(out);
}
const varint = (v: number | bigint) => leb128(BigInt.asUintN(64, (BigInt(v) << 1n) ^ (BigInt(v) >> 63n)));
const bytes = (b: Buffer | string | null) => {
  if (b === null) return varint(-1);
  const raw = Buffer.from(b);
  return Buffer.concat([varint(raw.length), raw]);
};
type Fields = Parameters<typeof encodeRecord>[0];
function referenceRecord(r: Fields): Buffer {
  const headers = Object.entries(r.headers).flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((one) => [k, one] as const));
  const body = Buffer.concat([
    Buffer.from([0]),
    varint(r.timestampDelta),
    varint(r.offsetDelta),
    bytes(r.key),
    bytes(r.value),
    varint(headers.length),
    ...headers.flatMap(([k, v]) => [bytes(k), bytes(v)]),
  ]);
  return Buffer.concat([varint(body.length), body]);
}
/** CRC-32C bit by bit, from its polynomial (reflected 0x82f63b78). */
function referenceCrc(b: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of b) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

describe('kafkajs encoding', () => {
  const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
  // Any grapheme, or any UTF-16 code units (a lone surrogate is written as three bytes, counted the same).
  const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
  const text = fc.oneof(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.string({ unit: codeUnit, maxLength: 40 }));
  const blob = fc.oneof(
    text,
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  );

  it('writes varints and varlongs as the protocol says, of the sizes it counts', () => {
    fc.assert(
      fc.property(int32, fc.oneof(int32, fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 })), (i, l) => {
        const written = new Encoder().writeVarInt(i).writeVarLong(l).buffer;
        expect(written).toEqual(Buffer.concat([varint(i), varint(l)]));
        expect(Encoder.sizeOfVarInt(i) + Encoder.sizeOfVarLong(l)).toBe(written.length);
      }),
      { numRuns: 2000 },
    );
    // Unsigned, up to 32 bits, into an encoder of exactly its size: filled, not grown.
    for (const u of [0, 1, 127, 128, 16_383, 16_384, 2 ** 21, 2 ** 28 - 1, 2 ** 28, 2 ** 32 - 1]) {
      const expected = leb128(BigInt(u));
      const e = Encoder.exactly(expected.length);
      e.writeUVarInt(u);
      expect({ bytes: e.buf, offset: e.offset, size: e.buf.length }, `${u}`).toEqual({
        bytes: expected,
        offset: expected.length,
        size: expected.length,
      });
    }
  });

  it('writes records byte for byte as the protocol lays them out, every byte of the memory it took', () => {
    const record = fc.record({
      offsetDelta: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      timestampDelta: fc.oneof(int32, fc.integer({ min: -(2 ** 40), max: 2 ** 40 })),
      key: fc.oneof(fc.constant(null), blob),
      value: fc.oneof(fc.constant(null), blob),
      headers: fc.dictionary(
        fc.string({ unit: 'grapheme', maxLength: 12 }).filter((k) => k !== '__proto__'),
        fc.oneof(blob, fc.array(blob, { maxLength: 3 })),
        { maxKeys: 8 },
      ),
    });
    fc.assert(
      fc.property(record, (r) => {
        expect(encodeRecord(r).buffer).toEqual(referenceRecord(r));
      }),
      { numRuns: 2000 },
    );
  });

  it('checksums a batch as CRC-32C does, at every length and alignment', () => {
    expect(crc32C(Buffer.from('123456789')).toString(16)).toBe('e3069283'); // the standard check value
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 7 }), (a, skip) => {
        const b = Buffer.from(a).subarray(Math.min(skip, a.length));
        expect(crc32C(b)).toBe(referenceCrc(b));
      }),
      { numRuns: 3000 },
    );
  });
});
