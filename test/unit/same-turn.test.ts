// The projector's lingering readers hand a fetch's batches at once, one per partition; sameTurn
// gathers the calls of one event-loop turn into one transaction. Each caller must get its own
// answer, a failure must reach every call it covered and no other, and a call made while a turn is
// being handled must not be lost or answered with another's result.
import { describe, expect, it } from 'vitest';
import { sameTurn } from '../../apps/projector/same-turn.ts';

const turn = () => new Promise((r) => setImmediate(r));

describe('sameTurn', () => {
  it('hands the calls of one turn to one call of `all`, in order, and answers each with its own result', async () => {
    const seen: number[][] = [];
    const double = sameTurn(async (xs: number[]) => {
      seen.push(xs);
      return xs.map((x) => x * 2);
    });
    const answers = await Promise.all([double(1), double(2), double(3)]);
    expect(answers).toEqual([2, 4, 6]);
    expect(seen).toEqual([[1, 2, 3]]);
  });

  it('starts a new turn for calls made while one is handled, and fails only the calls of the turn that failed', async () => {
    const seen: string[][] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const upper = sameTurn(async (xs: string[]) => {
      seen.push(xs);
      if (xs.includes('bad')) throw new Error('refused');
      if (seen.length === 1) await held;
      return xs.map((x) => x.toUpperCase());
    });
    const first = [upper('a'), upper('b')];
    await turn();
    const second = Promise.allSettled([upper('bad'), upper('c')]);
    await turn();
    const third = upper('d');
    release();
    expect(await Promise.all(first)).toEqual(['A', 'B']);
    expect((await second).map((s) => s.status === 'rejected' && (s.reason as Error).message)).toEqual(['refused', 'refused']);
    expect(await third).toBe('D');
    expect(seen).toEqual([['a', 'b'], ['bad', 'c'], ['d']]);
  });

  it('answers generated sequences of calls spread over turns each with its own result, every call handled once', async () => {
    for (let run = 0; run < 50; run++) {
      const handled: number[] = [];
      const square = sameTurn(async (xs: number[]) => {
        handled.push(...xs);
        if (Math.random() < 0.5) await turn();
        return xs.map((x) => x * x);
      });
      const calls: Promise<number>[] = [];
      const n = 1 + Math.floor(Math.random() * 40);
      for (let i = 0; i < n; i++) {
        calls.push(square(i));
        if (Math.random() < 0.3) await turn();
      }
      expect(await Promise.all(calls)).toEqual([...Array(n).keys()].map((i) => i * i));
      expect(handled).toEqual([...Array(n).keys()]);
    }
  });
});
