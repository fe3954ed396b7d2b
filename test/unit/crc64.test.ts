// The fingerprint in every event's first bytes: it must be the Avro spec's CRC-64-AVRO of the schema's
// Parsing Canonical Form, or other Avro implementations cannot find the writer schema.
import { describe, expect, it } from 'vitest';
import { crc64avro, fingerprintBytes } from '../../schemas/crc64avro.ts';
import { parseSchema } from '../../schemas/registry.ts';

const EMPTY = 0xc15d213aa4d7a795n;

describe('CRC-64-AVRO', () => {
  it('of "int" is 0x7275d51a3f395c8f, written little-endian as in the Java single-object header C3 01 8F 5C 39 3F 1A D5 75 72', () => {
    expect(crc64avro(Buffer.from('"int"'))).toBe(0x7275d51a3f395c8fn);
    expect(fingerprintBytes('"int"').toString('hex')).toBe('8f5c393f1ad57572');
  });

  it('of "string" is 0x8f014872634503c7', () => {
    expect(crc64avro(Buffer.from('"string"'))).toBe(0x8f014872634503c7n);
    expect(fingerprintBytes('"string"').toString('hex')).toBe('c70345637248018f');
  });

  // Avro's share/test/data/schema-tests.txt: canonical form and the fingerprint as a Java (signed) long.
  it.each<[string, bigint]>([
    ['"null"', 7195948357588979594n],
    ['"boolean"', -6970731678124411036n],
    ['"int"', 8247732601305521295n],
    ['"long"', -3434872931120570953n],
    ['"float"', 5583340709985441680n],
    ['"double"', -8181574048448539266n],
    ['"bytes"', 5746618253357095269n],
    ['"string"', -8142146995180207161n],
    ['[]', -1241056759729112623n],
    ['["int"]', -5232228896498058493n],
    ['["int","boolean"]', 5392556393470105090n],
    ['{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771n],
    ['{"name":"a.b.foo","type":"record","fields":[]}', -4616218487480524110n],
    ['{"name":"foo","type":"record","fields":[]}', -4824392279771201922n],
    ['{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}', 7843277075252814651n],
    ['{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}', -4860222112080293046n],
    ['{"name":"foo","type":"enum","symbols":["A1"]}', -6342190197741309591n],
    ['{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245n],
    ['{"name":"foo","type":"fixed","size":15}', 1756455273707447556n],
    ['{"name":"x.y.z.foo","type":"fixed","size":32}', -3064184465700546786n],
    ['{"type":"array","items":"null"}', -589620603366471059n],
    ['{"type":"map","values":"string"}', -8732877298790414990n],
    ['{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}', -1759257747318642341n],
  ])('of %s matches the Avro reference value', (canonical, javaLong) => {
    expect(crc64avro(Buffer.from(canonical))).toBe(BigInt.asUintN(64, javaLong));
    expect(fingerprintBytes(canonical).readBigInt64LE()).toBe(javaLong);
  });

  it('of no bytes is the EMPTY constant, and every fingerprint is 64 bits', () => {
    expect(crc64avro(new Uint8Array())).toBe(EMPTY);
    for (const s of ['"int"', 'x', 'é'.repeat(100)]) {
      const fp = crc64avro(Buffer.from(s));
      expect(fp >= 0n && fp <= 0xffffffffffffffffn).toBe(true);
      expect(fingerprintBytes(s)).toHaveLength(8);
    }
  });

  it('is deterministic and tells apart schemas that differ in one character', () => {
    const a = '{"name":"foo","type":"record","fields":[{"name":"f1","type":"int"}]}';
    expect(fingerprintBytes(a)).toEqual(fingerprintBytes(a));
    expect(fingerprintBytes(a)).not.toEqual(fingerprintBytes(a.replace('f1', 'f2')));
    expect(fingerprintBytes(a)).not.toEqual(fingerprintBytes(a.replace('int', 'long')));
  });
});

describe('parseSchema fingerprints the Parsing Canonical Form, not the text as written', () => {
  it('drops namespace (into the full name), doc, aliases, defaults, order and logical types', () => {
    const written = {
      type: 'record',
      name: 'foo',
      namespace: 'x.y',
      doc: 'documentation does not change the fingerprint',
      aliases: ['bar'],
      fields: [],
    };
    const s = parseSchema('Foo', 1, 'Foo.v1.avsc', written);
    expect(s.canonical).toBe('{"name":"x.y.foo","type":"record","fields":[]}');
    expect(s.fingerprint.readBigInt64LE()).toBe(5916914534497305771n);
    expect(s.fingerprintHex).toBe(s.fingerprint.toString('hex'));

    const withFields = parseSchema('Foo', 1, 'Foo.v1.avsc', {
      type: 'record',
      name: 'foo',
      fields: [
        { name: 'f1', type: 'boolean', default: false, doc: 'x', order: 'descending' },
        { name: 'f2', type: { type: 'int', logicalType: 'date' } },
      ],
    });
    expect(withFields.canonical).toBe(
      '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
    );
    expect(withFields.fingerprint.readBigInt64LE()).toBe(-4860222112080293046n);
  });

  it('gives the same fingerprint to a primitive written either way', () => {
    expect(parseSchema('I', 1, 'f', 'int').fingerprint.toString('hex')).toBe('8f5c393f1ad57572');
    expect(parseSchema('I', 1, 'f', { type: 'int' }).fingerprint.toString('hex')).toBe('8f5c393f1ad57572');
  });
});
