// kafkajs's record decoder, as patched (patches/kafkajs+*.patch): a record's headers come back as
// they were written. The patch fills one object in place instead of spreading a new one per header
// (the largest self time of a consumer); these pin the behaviour, and fail if the patch is missing
// (the original turned a header named `toString` into [Object's toString, value]).
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

type Header = { key: string; value: Buffer | string | null };
interface Encoder {
  writeInt8(v: number): Encoder;
  writeVarLong(v: number): Encoder;
  writeVarInt(v: number): Encoder;
  writeVarIntBytes(v: Buffer | string | null): Encoder;
  writeVarIntArray(items: Encoder[]): Encoder;
  buffer: Buffer;
}
const require = createRequire(import.meta.url);
const protocol = 'kafkajs/src/protocol';
const Encoder = require(`${protocol}/encoder`) as new () => Encoder;
const Decoder = require(`${protocol}/decoder`) as new (b: Buffer) => unknown;
const HeaderEncoder = require(`${protocol}/recordBatch/header/v0`) as (h: Header) => Encoder;
const decodeRecord = require(`${protocol}/recordBatch/record/v0/decoder`) as (
  decoder: unknown,
  context: object,
) => { offset: string; value: Buffer; headers: Record<string, unknown> };

/** One record's bytes as a broker sends them (after its length), with these headers in this order. */
function record(headers: Header[]): Buffer {
  return new Encoder()
    .writeInt8(0)
    .writeVarLong(5)
    .writeVarInt(2)
    .writeVarIntBytes('key')
    .writeVarIntBytes('value')
    .writeVarIntArray(headers.map(HeaderEncoder)).buffer;
}

const decode = (headers: Header[]) =>
  decodeRecord(new Decoder(record(headers)), { firstOffset: '40', firstTimestamp: '1000', magicByte: 2 });

describe('kafkajs record headers', () => {
  it('come back as written: one value per name, repeats as an array in order, a header without a value as null', () => {
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

  it("names like Object's own members, or __proto__, are headers like any other", () => {
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
});
