// Positions are what users resume from: "partition:offset", as the API and the live feed hand them out.
import { describe, expect, it } from 'vitest';
import { formatPosition, parsePosition, type Position } from '../../domain/position.ts';

describe('formatPosition / parsePosition', () => {
  it.each<[Position, string]>([
    [{ partition: 0, offset: 0 }, '0:0'],
    [{ partition: 3, offset: 17 }, '3:17'],
    [{ partition: 0, offset: -1 }, '0:-1'],
    [{ partition: 999_999, offset: Number.MAX_SAFE_INTEGER }, `999999:${Number.MAX_SAFE_INTEGER}`],
  ])('round trips %o as %s', (position, text) => {
    expect(formatPosition(position)).toBe(text);
    expect(parsePosition(text)).toEqual(position);
  });

  it('round trips positions across the whole range of partitions and offsets', () => {
    const offsets = [-1, 0, 1, 9, 10, 99, 100, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 10 ** 15, 2 ** 53 - 1];
    for (const partition of [0, 1, 9, 10, 255, 999_999]) {
      for (const offset of offsets) expect(parsePosition(formatPosition({ partition, offset }))).toEqual({ partition, offset });
    }
  });

  it.each([
    ['only a number', '1'],
    ['letters', 'a:b'],
    ['no offset', '1:'],
    ['no partition', ':1'],
    ['empty', ''],
    ['a negative partition', '-1:0'],
    ['a leading zero in the partition', '01:2'],
    ['a leading zero in the offset', '1:02'],
    ['an offset below -1', '1:-2'],
    ['offset -0', '1:-0'],
    ['a plus sign', '+1:2'],
    ['a fraction', '1:2.0'],
    ['an exponent', '1:1e3'],
    ['hex', '0x1:0'],
    ['three parts', '1:2:3'],
    ['spaces', ' 1:2'],
    ['a trailing newline', '1:2\n'],
    ['a huge partition', '1234567:0'],
    ['an offset past 2^53', '1:9007199254740992'],
    ['an offset of 16 nines', '1:9999999999999999'],
    ['an offset of 30 digits', `1:${'9'.repeat(30)}`],
    ['full-width digits', '１:２'],
  ])('rejects %s (%j)', (_name, text) => {
    expect(parsePosition(text)).toBeUndefined();
  });
});
