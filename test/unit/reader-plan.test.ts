// How a projector reads the log for the versions it serves: each topic once for all the versions
// that read it alike, a topic read with a wait apart from one read without, and every version
// reading every topic of its own exactly once.
import { describe, expect, it } from 'vitest';
import { planReaders } from '../../apps/projector/runner.ts';
import { PROJECTIONS } from '../../projections/catalog.ts';
import type { Projection } from '../../projections/projection.ts';
import { schemaOf, versionsOfGroup } from '../../projections/versions.ts';

const serving = (names: string[], version = 1) => names.map((name) => ({ projection: PROJECTIONS[name]!, version }));
const shape = (plans: ReturnType<typeof planReaders>) =>
  plans.map((p) => ({ group: p.group, topics: p.topics, lingerMs: p.lingerMs })).sort((a, b) => (a.group < b.group ? -1 : 1));

describe('planReaders', () => {
  it('reads captions once for the caption history and analytics; analytics and the streams read model each wait, apart', () => {
    expect(shape(planReaders(serving(Object.keys(PROJECTIONS))))).toEqual([
      { group: 'castlog-projection-analytics_v1+captions_v1@captions', topics: ['captions'], lingerMs: 0 },
      { group: 'castlog-projection-analytics_v1@encodes,streams', topics: ['streams', 'encodes'], lingerMs: 250 },
      { group: 'castlog-projection-encodes_v1@encodes', topics: ['encodes'], lingerMs: 0 },
      { group: 'castlog-projection-streams_v1@streams', topics: ['streams'], lingerMs: 100 },
      { group: 'castlog-projection-uploads_v1@uploads', topics: ['uploads'], lingerMs: 0 },
    ]);
  });

  it('gives analytics alone two readers, one per wait, under different groups', () => {
    expect(shape(planReaders(serving(['analytics'], 3)))).toEqual([
      { group: 'castlog-projection-analytics_v3@captions', topics: ['captions'], lingerMs: 0 },
      { group: 'castlog-projection-analytics_v3@encodes,streams', topics: ['streams', 'encodes'], lingerMs: 250 },
    ]);
  });

  it('has every version read each of its topics once, whatever projections and waits it is given', () => {
    const topics = ['captions', 'streams', 'uploads', 'encodes', 'alerts'] as const;
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 200; round++) {
      const versions = Array.from({ length: 1 + Math.floor(random() * 6) }, (_, i) => {
        const own = topics.filter(() => random() < 0.5);
        const projection = {
          ...PROJECTIONS.captions!,
          name: `p${i}`,
          topics: own.length ? own : ['captions'],
          lingerMs: Object.fromEntries(own.filter(() => random() < 0.3).map((t) => [t, [50, 250][Math.floor(random() * 2)]!])),
        } as Projection;
        return { projection, version: 1 + Math.floor(random() * 3) };
      });
      const plans = planReaders(versions);
      const read = plans.flatMap((p) => p.versions.flatMap((v) => p.topics.map((t) => `${schemaOf(v.projection.name, v.version)} ${t}`)));
      const wanted = versions.flatMap((v) => v.projection.topics.map((t) => `${schemaOf(v.projection.name, v.version)} ${t}`));
      expect(read.sort()).toEqual(wanted.sort());
      expect(new Set(plans.map((p) => p.group)).size, 'one consumer group per reader').toBe(plans.length);
      for (const p of plans)
        expect(versionsOfGroup(p.group), 'the status reads the versions back from the name').toEqual(
          p.versions.map((v) => schemaOf(v.projection.name, v.version)).sort(),
        );
      for (const p of plans)
        for (const v of p.versions) for (const t of p.topics) expect(v.projection.lingerMs?.[t] ?? 0, `${p.group} ${t}`).toBe(p.lingerMs);
    }
  });
});
