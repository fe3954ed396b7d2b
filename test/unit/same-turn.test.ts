// The projector's lingering readers hand a fetch's batches at once, one per partition; sameTurn
// gathers the calls of one event-loop turn so that they go in one transaction. Each caller must get
// its own answer (its own failure included, no other's), and a call made while a turn is being
// handled must be neither lost nor answered with another's result.
import { describe, expect, it } from 'vitest';
import { sameTurn } from '../../apps/projector/same-turn.ts';

const turn = () => new Promise((r) => setImmediate(r));

describe('sameTurn', () => {
  it('hands the calls of one turn to one call of `all`, in order, and answers each with its own result', async () => {
    const seen: number[][] = [];
    const double = sameTurn((xs: number[]) => {
      seen.push(xs);
      return xs.map(async (x) => x * 2);
    });
    expect(await Promise.all([double(1), double(2), double(3)])).toEqual([2, 4, 6]);
    expect(seen).toEqual([[1, 2, 3]]);
  });

  it('starts a new turn for calls made while one is handled; a failure reaches only the calls it is the answer of', async () => {
    const seen: string[][] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const upper = sameTurn((xs: string[]) => {
      seen.push(xs);
      if (xs.includes('throws')) throw new Error('all refused');
      const first = seen.length === 1;
      return xs.map(async (x) => {
        if (first) await held;
        if (x === 'bad') throw new Error(`refused ${x}`);
        return x.toUpperCase();
      });
    });
    const first = Promise.allSettled([upper('a'), upper('b')]);
    await turn();
    const second = Promise.allSettled([upper('bad'), upper('c')]);
    await turn();
    const third = Promise.allSettled([upper('throws'), upper('d')]);
    await turn();
    const fourth = upper('e');
    release();
    const told = async (p: Promise<PromiseSettledResult<string>[]>) =>
      (await p).map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message));
    expect(await told(first)).toEqual(['A', 'B']);
    expect(await told(second)).toEqual(['refused bad', 'C']);
    expect(await told(third)).toEqual(['all refused', 'all refused']);
    expect(await fourth).toBe('E');
    expect(seen).toEqual([['a', 'b'], ['bad', 'c'], ['throws', 'd'], ['e']]);
  });

  it('answers generated sequences of calls spread over turns each with its own result, every call handled once', async () => {
    for (let run = 0; run < 50; run++) {
      const handled: number[] = [];
      const square = sameTurn((xs: number[]) => {
        handled.push(...xs);
        return xs.map(async (x) => {
          if (Math.random() < 0.5) await turn();
          return x * x;
        });
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
