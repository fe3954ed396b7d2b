// parseTime (domain/time.ts): what a query's from/to accepts, and the 400 a bad one gets.
import { describe, expect, it } from 'vitest';
import { answerOf } from '../../apps/api/errors.ts';
import { DomainError } from '../../domain/decider.ts';
import { parseTime } from '../../domain/time.ts';

describe('parseTime', () => {
  it('reads milliseconds since the epoch and ISO 8601 dates; nothing given is undefined', () => {
    expect(parseTime('from', '1700000000000')).toBe(1_700_000_000_000);
    expect(parseTime('from', '0')).toBe(0);
    expect(parseTime('to', '2024-03-01T12:00:00Z')).toBe(Date.UTC(2024, 2, 1, 12));
    expect(parseTime('to', '2024-03-01')).toBe(Date.UTC(2024, 2, 1));
    expect(parseTime('from', undefined)).toBeUndefined();
    expect(parseTime('from', '')).toBeUndefined();
  });

  it.each(['soon', '2024-13-45T99:00', '1234567890123456', `2024-03-01T12:00:00Z${' '.repeat(30)}`])(
    'refuses %j, naming the field',
    (value) => {
      expect(() => parseTime('from', value)).toThrow(DomainError);
      expect(() => parseTime('to', value)).toThrow('to: must be milliseconds since the epoch or an ISO 8601 date');
    },
  );

  it('is answered 400 with the field, as every bad parameter is', () => {
    let err: unknown;
    try {
      parseTime('from', 'yesterday');
    } catch (e) {
      err = e;
    }
    expect(answerOf(err)).toEqual({
      statusCode: 400,
      body: { error: 'from: must be milliseconds since the epoch or an ISO 8601 date', field: 'from' },
      headers: {},
    });
  });
});
