// CRC-64-AVRO (Rabin) fingerprint, as the Avro specification defines it for single-object encoding.
const EMPTY = 0xc15d213aa4d7a795n;
const MASK = 0xffffffffffffffffn;

const TABLE: bigint[] = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n));
  return fp & MASK;
});

export function crc64avro(bytes: Uint8Array): bigint {
  let fp = EMPTY;
  for (const b of bytes) fp = ((fp >> 8n) ^ TABLE[Number((fp ^ BigInt(b)) & 0xffn)]!) & MASK;
  return fp;
}

/** The 8 bytes that follow 0xC3 0x01 in single-object encoding: the fingerprint, little-endian. */
export function fingerprintBytes(canonicalSchema: string): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(crc64avro(Buffer.from(canonicalSchema, 'utf8')));
  return out;
}
