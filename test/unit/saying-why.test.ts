// A start-up wait that lasts minutes (a broker away while KAFKA_CLUSTER_SIZE is declared, a
// database restarting) tries every 500 ms; its log says each new reason at once and a repeated one
// every ten seconds, with the count of tries it did not say.
import { describe, expect, it } from 'vitest';
import { retry, sayingWhy } from '../../infra/retry.ts';

/** What `sayingWhy` said for failures at the given times, each with its reason. */
function said(failures: [ms: number, reason: unknown][], everyMs = 10_000) {
  let clock = 0;
  const out: { at: number; attempt: number; unsaid: number; reason: string }[] = [];
  const onRetry = sayingWhy(
    (err, attempt, unsaid) => out.push({ at: clock, attempt, unsaid, reason: err instanceof Error ? err.message : String(err) }),
    everyMs,
    () => clock,
  );
  failures.forEach(([ms, reason], i) => ((clock = ms), onRetry(reason, i + 1)));
  return out;
}

describe('sayingWhy', () => {
  it('says a reason that repeats every two tries a second once every ten seconds, counting the rest', () => {
    const failures = Array.from({ length: 41 }, (_, i): [number, unknown] => [i * 500, new Error('the cluster lists 1 of the 3 brokers')]);
    expect(said(failures)).toEqual([
      { at: 0, attempt: 1, unsaid: 0, reason: 'the cluster lists 1 of the 3 brokers' },
      { at: 10_000, attempt: 21, unsaid: 19, reason: 'the cluster lists 1 of the 3 brokers' },
      { at: 20_000, attempt: 41, unsaid: 19, reason: 'the cluster lists 1 of the 3 brokers' },
    ]);
  });

  it('says a new reason at once, and the old one again when it comes back', () => {
    const out = said([
      [0, new Error('connect ECONNREFUSED')],
      [500, new Error('connect ECONNREFUSED')],
      [1000, new Error('the cluster lists 2 of the 3 brokers')],
      [1500, new Error('the cluster lists 2 of the 3 brokers')],
      [2000, new Error('connect ECONNREFUSED')],
      [2500, 'a thrown string'],
      [3000, 'a thrown string'],
    ]);
    expect(out.map((o) => [o.at, o.reason, o.unsaid])).toEqual([
      [0, 'connect ECONNREFUSED', 0],
      [1000, 'the cluster lists 2 of the 3 brokers', 1],
      [2000, 'connect ECONNREFUSED', 1],
      [2500, 'a thrown string', 0],
    ]);
  });

  it('tells errors of different kinds with the same message apart', () => {
    const out = said([
      [0, new TypeError('bad')],
      [500, new RangeError('bad')],
    ]);
    expect(out).toHaveLength(2);
  });

  it('does not change what retry does: every attempt is still made, and the last error thrown', async () => {
    const lines: number[] = [];
    let calls = 0;
    const failing = retry(
      async () => {
        calls++;
        throw new Error('still away');
      },
      { attempts: 5, delayMs: 1, onRetry: sayingWhy((_err, attempt) => lines.push(attempt)) },
    );
    await expect(failing).rejects.toThrow('still away');
    expect(calls).toBe(5);
    expect(lines).toEqual([1]);
  });
});
