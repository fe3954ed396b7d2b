// The fanout's memory of recent captions per partition: clients resuming from inside it are served
// from here, so what it returns must be exactly the channel's entries after a position.
import { describe, expect, it } from 'vitest';
import { PartitionHistory, type Entry } from '../../apps/fanout/history.ts';

const entry = (offset: number, channel: string): Entry => ({ offset, channel, json: `{"o":${offset},"c":"${channel}"}` });
const offsets = (entries: Entry[]) => entries.map((e) => e.offset);

describe('PartitionHistory', () => {
  it('starts empty at its first offset and covers exactly what comes after the previous one', () => {
    const h = new PartitionHistory(10, 100);
    expect([h.start, h.next]).toEqual([100, 100]);
    expect(h.covers(99)).toBe(true);
    expect(h.covers(98)).toBe(false);
    expect(h.after('news', 50)).toEqual([]);
  });

  it('keeps up to capacity entries; evicting one moves start past it', () => {
    const h = new PartitionHistory(3, 0);
    for (let o = 0; o < 3; o++) h.add(o, entry(o, 'news'));
    expect([h.start, h.next]).toEqual([0, 3]);
    expect(offsets(h.after('news', -1))).toEqual([0, 1, 2]);

    h.add(3, entry(3, 'news'));
    expect([h.start, h.next]).toEqual([1, 4]);
    expect(offsets(h.after('news', -1))).toEqual([1, 2, 3]);
    expect(h.covers(0)).toBe(true); // everything after offset 0 is here
    expect(h.covers(-1)).toBe(false); // offset 0 is gone
  });

  it('counts repeats (records not delivered) in next but not against capacity', () => {
    const h = new PartitionHistory(2, 0);
    h.add(0, entry(0, 'a'));
    h.add(1, undefined);
    h.add(2, undefined);
    h.add(3, entry(3, 'a'));
    expect([h.start, h.next]).toEqual([0, 4]);
    expect(offsets(h.after('a', -1))).toEqual([0, 3]);
    h.add(4, entry(4, 'a'));
    expect(h.start).toBe(1);
    expect(h.covers(0)).toBe(true);
  });

  it('returns only the asked channel’s entries strictly after the offset, oldest first', () => {
    const h = new PartitionHistory(100, 0);
    ['a', 'b', 'a', 'c', 'a', 'b'].forEach((c, o) => h.add(o, entry(o, c)));
    expect(offsets(h.after('a', -1))).toEqual([0, 2, 4]);
    expect(offsets(h.after('a', 2))).toEqual([4]);
    expect(offsets(h.after('a', 3))).toEqual([4]);
    expect(offsets(h.after('a', 4))).toEqual([]);
    expect(offsets(h.after('b', 0))).toEqual([1, 5]);
    expect(h.after('c', 2)).toEqual([entry(3, 'c')]);
    expect(h.after('nobody', -1)).toEqual([]);
  });

  it('handles offsets with gaps (transaction markers, compacted records)', () => {
    const h = new PartitionHistory(3, 10);
    for (const o of [10, 13, 20, 21]) h.add(o, entry(o, 'a'));
    expect([h.start, h.next]).toEqual([11, 22]);
    expect(offsets(h.after('a', 15))).toEqual([20, 21]);
    expect(offsets(h.after('a', 10))).toEqual([13, 20, 21]);
  });

  it('forgets a channel whose entries are all evicted, and takes it back when it speaks again', () => {
    const h = new PartitionHistory(2, 0);
    h.add(0, entry(0, 'rare'));
    h.add(1, entry(1, 'busy'));
    h.add(2, entry(2, 'busy'));
    expect(h.after('rare', -1)).toEqual([]);
    h.add(3, entry(3, 'rare'));
    expect(offsets(h.after('rare', -1))).toEqual([3]);
  });

  it('agrees with a naive model over 20,000 records on 7 channels, through many evictions and compactions', () => {
    const capacity = 1000;
    const h = new PartitionHistory(capacity, 0);
    // The model: every delivered entry, and how many of them were evicted.
    const delivered: Entry[] = [];
    const channels = ['a', 'b', 'c', 'd', 'e', 'f', 'rare'];
    let seed = 7;
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    let offset = 0;

    for (let i = 0; i < 20_000; i++) {
      offset += random() < 0.05 ? 2 : 1; // now and then a gap
      if (random() < 0.1) {
        h.add(offset, undefined); // a repeat, not delivered
      } else {
        // Skewed: 'a' is busy, 'rare' shows up in bursts, so its queue empties and comes back.
        const r = random();
        const burst = Math.floor(i / 2500) % 2 === 0;
        const channel = r < 0.4 ? 'a' : burst && r > 0.97 ? 'rare' : channels[1 + Math.floor(random() * 5)]!;
        const e = entry(offset, channel);
        h.add(offset, e);
        delivered.push(e);
      }

      if (i % 97 === 0 || i > 19_990) {
        const kept = delivered.slice(-capacity);
        const start = delivered.length > capacity ? delivered[delivered.length - capacity - 1]!.offset + 1 : 0;
        expect(h.start).toBe(start);
        expect(h.next).toBe(offset + 1);
        const probes = [-1, start - 2, start - 1, start, kept[Math.floor(kept.length / 2)]?.offset ?? 0, offset - 3, offset, offset + 5];
        for (const channel of channels) {
          for (const p of probes) {
            const expected = kept.filter((e) => e.channel === channel && e.offset > p);
            expect(offsets(h.after(channel, p)), `after(${channel}, ${p}) at record ${i}`).toEqual(offsets(expected));
          }
        }
        expect(h.covers(start - 1)).toBe(true);
        expect(h.covers(start - 2)).toBe(false);
      }
    }
  });
});
