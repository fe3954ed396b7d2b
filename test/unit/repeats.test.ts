// The repeat rule (domain/captions/repeats.ts) against the shared table of cases; the caption
// projection's SQL meets the same table in test/integration/station-repeats.test.ts.
import { describe, expect, it } from 'vitest';
import { LastSeqs, isRepeat } from '../../domain/captions/repeats.ts';
import { REPEAT_CASES, formatFragment, parseFragment } from '../support/station-repeats.ts';

describe('a station repeat', () => {
  it.each(REPEAT_CASES)('$name (one reader, in memory)', ({ batches, kept }) => {
    const seqs = new LastSeqs();
    const out = batches
      .flat()
      .map(parseFragment)
      .filter((f) => seqs.admit(f))
      .map(formatFragment);
    expect(out).toEqual(kept);
  });

  it.each(REPEAT_CASES)('$name (a reader that keeps its last seqs between batches, as analytics does)', ({ batches, kept }) => {
    const stored = new Map<string, { channel: string; station: string; seq: number }>();
    const out: string[] = [];
    for (const batch of batches) {
      const seqs = new LastSeqs();
      for (const s of stored.values()) seqs.seed(s.channel, s.station, s.seq);
      for (const f of batch.map(parseFragment)) {
        if (!seqs.admit(f)) continue;
        out.push(formatFragment(f));
        stored.set(`${f.channel}/${f.station}`, { ...f, seq: seqs.lastSeq(f.channel, f.station)! });
      }
    }
    expect(out).toEqual(kept);
  });

  it('is a seq not above the last one seen; with none seen, no seq is', () => {
    expect(isRepeat(3, 3)).toBe(true);
    expect(isRepeat(2, 3)).toBe(true);
    expect(isRepeat(4, 3)).toBe(false);
    expect(isRepeat(0)).toBe(false);
    expect(isRepeat(0, undefined)).toBe(false);
  });

  it('changes nothing when a repeat is refused', () => {
    const seqs = new LastSeqs();
    seqs.admit({ channel: 'a', station: 's', seq: 7 });
    expect(seqs.admit({ channel: 'a', station: 's', seq: 2 })).toBe(false);
    expect(seqs.lastSeq('a', 's')).toBe(7);
    expect(seqs.lastSeq('a', 't')).toBeUndefined();
  });
});
