// Projections split across projectors (PROJECTIONS): each process runs only the ones it is given,
// a projection nobody runs waits in the log, and the process that takes it up later builds it from
// there. A name that is no projection stops the projector with a message that says which. The
// admin status says which versions a projector runs, and which none does.
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { System, fragment, waitFor } from '../support/system.ts';
import { projectionGroup } from '../../projections/versions.ts';

let sys: System;
let other: System;
const CHANNEL = 'split.news';

beforeAll(async () => {
  sys = await System.create();
  other = await System.sharing(sys);
  await sys.start('api');
}, 120_000);

afterAll(async () => {
  await other?.stop();
  await sys?.stop();
});

/** Per projection version: how many caption records it has applied (its positions on that topic). */
async function appliedCaptions(): Promise<Map<string, number>> {
  const { rows } = await sql<{ projection: string; applied: string }>`
    SELECT projection, sum(next_offset) AS applied FROM projection_positions WHERE topic = 'captions' GROUP BY projection`.execute(sys.db);
  return new Map(rows.map((r) => [r.projection, Number(r.applied)]));
}

/** Per serving version, the projector processes the admin status says run it. */
async function runners(): Promise<Record<string, { host: string }[]>> {
  const r = await fetch(`${sys.api}/v1/admin/projections`, { headers: { authorization: 'Bearer test-admin-token' } });
  expect(r.status).toBe(200);
  const { projections } = (await r.json()) as {
    projections: { name: string; versions: { role: string; runners: { host: string }[] }[] }[];
  };
  return Object.fromEntries(projections.map((p) => [p.name, p.versions.find((v) => v.role === 'serving')!.runners]));
}

/** Waits until the caption history and analytics have both applied the first n caption records. */
async function bothApplied(n: number): Promise<void> {
  const both = async () => {
    const applied = await appliedCaptions();
    return applied.get('captions_v1') === n && applied.get('analytics_v1') === n;
  };
  await waitFor(`both projections at ${n}`, both, 30_000, 100);
}

/** The consumer group of analytics on a reader of its own (apps/projector/runner.ts). */
const ALONE_GROUP = projectionGroup(['analytics_v1'], ['captions']);

/** 1..n */
const seqs = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** Posts fragments of the channel with these seqs. */
async function post(seqs: number[]): Promise<void> {
  const key = await sys.stationKey();
  const lines = seqs.map((seq) => JSON.stringify(fragment(seq, `split fragment ${seq}`)));
  expect((await sys.postNdjson(CHANNEL, key, lines.join('\n') + '\n')).status).toBe(200);
}

/** Fragments the analytics rollup has counted on the channel (its public view, as readers see it). */
async function fragmentsCounted(): Promise<number> {
  const { rows } = await sql<{ n: string | null }>`
    SELECT sum(fragments) AS n FROM analytics_caption_minutes WHERE channel = ${CHANNEL}`.execute(sys.db);
  return Number(rows[0]?.n ?? 0);
}

it('runs only the projections it is given; one nobody ran is built from the log once a projector takes it', async () => {
  await sys.start('projector', { PROJECTIONS: 'captions' });
  const key = await sys.stationKey();
  const sent = Array.from({ length: 20 }, (_, i) => fragment(i + 1, `split fragment ${i + 1}`));
  const posted = await sys.postNdjson(CHANNEL, key, sent.map((f) => JSON.stringify(f)).join('\n') + '\n');
  expect(posted.status).toBe(200);
  expect(posted.lines.filter((l) => l.position)).toHaveLength(20);

  await waitFor('the caption history', async () => (await sys.fragments(CHANNEL)).length === 20, 30_000, 100);
  expect((await sys.fragments(CHANNEL)).map((f) => f.seq)).toEqual(sent.map((f) => f.seq));
  const applied = await appliedCaptions();
  expect(applied.get('captions_v1')).toBe(20);
  expect(applied.has('analytics_v1'), 'the captions-only projector did not run analytics').toBe(false);
  await waitFor('the captions projector in the status', async () => (await runners()).captions!.length === 1, 30_000, 200);
  const alone = await runners();
  expect(alone.captions).toEqual([{ clientId: 'castlog', host: expect.stringMatching(/^[\d.:a-f]+$/) }]);
  for (const name of ['analytics', 'streams', 'uploads', 'encodes']) expect(alone[name], `${name}: nobody runs it`).toEqual([]);

  await other.start('projector', { PROJECTIONS: 'analytics, streams,uploads,encodes' });
  await waitFor('analytics from the log', async () => (await appliedCaptions()).get('analytics_v1') === 20, 30_000, 100);
  await waitFor('the per-minute rollup', async () => (await fragmentsCounted()) === 20, 30_000, 100);
  expect((await sys.fragments(CHANNEL)).length, 'nothing applied twice').toBe(20);
  await waitFor('both projectors in the status', async () => (await runners()).analytics!.length === 1, 30_000, 200);
  expect(Object.values(await runners()).map((r) => r.length)).toEqual([1, 1, 1, 1, 1]);
}, 120_000);

it('refuses a name that is no projection, saying which', async () => {
  await other.kill('projector'); // else its port would answer for the one started next
  const start = other.start('projector', { PROJECTIONS: 'captions,captionz' });
  await expect(start).rejects.toThrow(/captionz/);
}, 60_000);

it('reads a topic once for the projections one projector runs, each from its own position', async () => {
  await sys.kill('projector');
  await other.start('projector', { PROJECTIONS: 'analytics' });
  await post([21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
  await waitFor('analytics ahead of the caption history', async () => (await appliedCaptions()).get('analytics_v1') === 30, 30_000, 100);
  expect((await appliedCaptions()).get('captions_v1')).toBe(20);
  await other.kill('projector');

  // One projector for all of them: it reads the captions topic once, from the lower of the two
  // positions; analytics, ahead, skips what it has counted.
  await sys.start('projector');
  await post([31, 32, 33, 34, 35]);
  await bothApplied(35);
  expect((await sys.fragments(CHANNEL)).map((f) => f.seq)).toEqual(seqs(35));
  expect(await fragmentsCounted(), 'nothing counted twice').toBe(35);
  await waitFor('one projector runs each', async () => Object.values(await runners()).every((r) => r.length === 1), 30_000, 200);
}, 120_000);

it('lets the other projections of a projector go on while one keeps failing; that one catches up on its own once it can', async () => {
  const applied = async (key: string) => (await appliedCaptions()).get(key);
  const said = (pattern: RegExp) =>
    sys
      .said('projector')
      .split('\n')
      .filter((l) => pattern.test(l)).length;
  const ALONE = /failed 3 times in a row .* a reader of its own/;
  // A projection broken from outside: every write to one of its tables fails, as a bug in it
  // would, or a full disk under its tables.
  await sql`CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'broken (test)'; END $$`.execute(sys.db);
  const breakTable = (table: string) =>
    sql`CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON ${sql.raw(table)} FOR EACH ROW EXECUTE FUNCTION public.refuse()`.execute(sys.db);
  const mend = (table: string) => sql`DROP TRIGGER refuse ON ${sql.raw(table)}`.execute(sys.db);

  // Both failing (as when Postgres is away): retried together, nobody goes alone.
  await breakTable('captions_v1.channels');
  await breakTable('analytics_v1.analytics_caption_minutes');
  const failedBefore = said(/batch handler failed/);
  await post([36, 37, 38, 39, 40]);
  await waitFor('four attempts', async () => said(/batch handler failed/) >= failedBefore + 4, 30_000, 100);
  expect(said(ALONE), 'nobody split off while every member fails').toBe(0);
  expect(await applied('captions_v1')).toBe(35);

  // Analytics alone failing: the others apply the batch at once, and the ones after it would wait
  // for analytics (retried together) but for its going on a reader of its own.
  await mend('captions_v1.channels');
  await waitFor('the caption history of the failing batch', async () => (await applied('captions_v1')) === 40, 30_000, 100);
  await post([41, 42, 43, 44, 45]);
  await waitFor(
    'the caption history past the broken projection',
    async () => (await appliedCaptions()).get('captions_v1') === 45,
    30_000,
    100,
  );
  expect((await sys.fragments(CHANNEL)).map((f) => f.seq)).toEqual(seqs(45));
  expect((await appliedCaptions()).get('analytics_v1'), 'the broken one applied nothing').toBe(35);
  expect(await fragmentsCounted()).toBe(35);
  expect(said(ALONE)).toBe(1);
  const aloneMembers = async () => ((await sys.log.groupMembers(ALONE_GROUP)).get(ALONE_GROUP) ?? []).length;
  await waitFor('analytics in a consumer group of its own', async () => (await aloneMembers()) === 1, 30_000, 200);
  expect(sys.said('projector')).toMatch(/analytics_v1 failed 3 times in a row/);

  await mend('analytics_v1.analytics_caption_minutes');
  await waitFor('analytics caught up on its own reader', async () => (await appliedCaptions()).get('analytics_v1') === 45, 30_000, 100);
  expect(await fragmentsCounted(), 'each counted once').toBe(45);
  // Caught up and failing no more for a while, it goes back on the shared reader with the next
  // records that find it at the end of the log.
  let last = 45;
  await waitFor(
    'analytics back on the shared reader (its own consumer group left)',
    async () => {
      await post([++last]);
      await bothApplied(last);
      return (await aloneMembers()) === 0;
    },
    30_000,
    1000,
  );
  await post([last + 1, last + 2]);
  await bothApplied(last + 2);
  expect((await sys.fragments(CHANNEL)).map((f) => f.seq)).toEqual(seqs(last + 2));
  expect(await fragmentsCounted(), 'each counted once').toBe(last + 2);
  expect(said(ALONE), 'split off once').toBe(1);
  await waitFor('one projector runs each', async () => Object.values(await runners()).every((r) => r.length === 1), 30_000, 200);
}, 120_000);
