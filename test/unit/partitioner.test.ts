// A channel's partition must be the one Kafka's Java client (and every other Java-compatible client)
// would pick for the same key, or readers looking for a channel's captions look in the wrong place.
import { randomBytes } from 'node:crypto';
import { Partitioners, type PartitionMetadata } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { murmur2, partitionFor } from '../../schemas/partitioner.ts';

describe('murmur2', () => {
  // Apache Kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2.
  it.each([
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ])('of %j is %i, as in Kafka’s Java test suite', (key, expected) => {
    expect(murmur2(Buffer.from(key))).toBe(expected);
  });

  it('returns a signed 32-bit integer for any input', () => {
    for (let len = 0; len < 64; len++) {
      const h = murmur2(randomBytes(len));
      expect(Number.isInteger(h) && h >= -(2 ** 31) && h < 2 ** 31).toBe(true);
    }
  });
});

describe('partitionFor', () => {
  const kafkajs = Partitioners.DefaultPartitioner();
  const metadata = (n: number): PartitionMetadata[] =>
    Array.from({ length: n }, (_, partitionId) => ({ partitionId, partitionErrorCode: 0, leader: 1, replicas: [1], isr: [1] }));
  const kafkajsPartition = (key: string, n: number) =>
    kafkajs({ topic: 'captions', partitionMetadata: metadata(n), message: { key, value: null } });

  it('is (murmur2 & 0x7fffffff) mod partitions, the Java client’s rule', () => {
    expect(partitionFor('foobar', 6)).toBe((-790332482 & 0x7fffffff) % 6);
    expect(partitionFor('abc', 6)).toBe(479470107 % 6);
    expect(partitionFor('21', 7)).toBe((-973932308 & 0x7fffffff) % 7);
  });

  it('agrees with kafkajs’s Java-compatible default partitioner on channel ids of every length, ASCII and not', () => {
    const keys = ['', 'a', 'news', 'news.one', 'sports-2', 'ch_ü', 'канал', '頻道', '😀.live'];
    for (let i = 0; i < 500; i++) keys.push(randomBytes(1 + (i % 40)).toString('base64url'));
    for (const key of keys) {
      for (const n of [1, 2, 3, 6, 12, 100])
        expect(partitionFor(key, n), `${JSON.stringify(key)} over ${n}`).toBe(kafkajsPartition(key, n));
    }
  });

  it('hashes the UTF-8 bytes of the key', () => {
    expect(partitionFor('é', 1000)).toBe((murmur2(Buffer.from([0xc3, 0xa9])) & 0x7fffffff) % 1000);
  });

  it('is always a valid partition and spreads channels over all of them', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 600; i++) {
      const p = partitionFor(`channel-${i}`, 6);
      expect(p >= 0 && p < 6 && Number.isInteger(p)).toBe(true);
      seen.add(p);
    }
    expect(seen.size).toBe(6);
  });
});
