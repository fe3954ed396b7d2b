// The repeat rule's table of cases (te../support/station-repeats.ts) against the real thing: the
// caption projection's SQL, batch by batch, on Postgres; and every reader of the real log — the
// read model, analytics, the live fanout and verify — keeping the same fragments.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyCaptions } from '../../apps/projection-admin.ts';
import { captionsProjection } from '../../projections/captions/projection.ts';
import type { ProjectedRecord } from '../../projections/projection.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { newMeta } from '../../schemas/envelope.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { REPEAT_CASES, formatFragment, parseFragment } from '../support/station-repeats.ts';
import { LiveClient, System, fragment, waitFor } from '../support/system.ts';

let sys: System;
beforeAll(async () => {
  sys = await System.create();
});
afterAll(() => sys?.stop());

type Parsed = ReturnType<typeof parseFragment>;

/** Each case's channels get a prefix of their own, so cases share a database without meeting. */
const caseChannel = (prefix: string, i: number, channel: string) => `${prefix}${i}.${channel}`;
const caseFragment = (prefix: string, i: number, text: string): Parsed => {
  const f = parseFragment(text);
  return { ...f, channel: caseChannel(prefix, i, f.channel) };
};

/** Expected fragments by channel, in log order (the log orders a channel, not channels between them). */
function byChannel(fragments: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of fragments) (out[parseFragment(f).channel] ??= []).push(f);
  return out;
}

describe("the caption projection's SQL", () => {
  const SCHEMA = 'repeat_cases';
  /** The next offset per partition: the cases share one log, as they share the tables. */
  const next = new Map<number, number>();

  it.each(REPEAT_CASES.map((c, i) => ({ ...c, i })))('$name', async ({ batches, kept, i }) => {
    await sys.db.transaction().execute(async (trx) => {
      await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(SCHEMA)}`.execute(trx);
      await sql`SET LOCAL search_path TO ${sql.id(SCHEMA)}, public`.execute(trx);
      if (i === 0) await captionsProjection.createTables(trx);
    });
    // As the projector hands them over: one partition's records per call, each in its transaction.
    for (const batch of batches) {
      const perPartition = new Map<number, ProjectedRecord<'captions'>[]>();
      for (const f of batch.map((t) => caseFragment('sql', i, t))) {
        const partition = partitionFor(f.channel, TOPICS.captions.partitions);
        const offset = next.get(partition) ?? 0;
        next.set(partition, offset + 1);
        const data = { ...f, text: formatFragment(f), start: offset, end: offset, mode: null, lang: null, receivedAt: Date.now() };
        const record: ProjectedRecord<'captions'> = {
          topic: 'captions',
          partition,
          offset,
          meta: newMeta('CaptionFragmentReceived', 'test'),
          event: { type: 'CaptionFragmentReceived', version: 1, data },
        };
        perPartition.set(partition, [...(perPartition.get(partition) ?? []), record]);
      }
      for (const records of perPartition.values()) {
        await sys.db.transaction().execute(async (trx) => {
          await sql`SET LOCAL search_path TO ${sql.id(SCHEMA)}, public`.execute(trx);
          await captionsProjection.apply(trx, records);
        });
      }
    }
    const rows = await sys.db
      .withSchema(SCHEMA)
      .selectFrom('caption_fragments')
      .select(['channel', 'station', 'seq', 'text'])
      .where('channel', 'like', `sql${i}.%`)
      .orderBy('partition')
      .orderBy('offset')
      .execute();
    expect(rows.every((r) => r.text === formatFragment(r))).toBe(true);
    const got = byChannel(rows.map((r) => formatFragment({ ...r, channel: r.channel.slice(`sql${i}.`.length) })));
    expect(got).toEqual(byChannel(kept));
  });
});

describe('every reader of the log', () => {
  const LAST = 'repeat-end';
  let live: LiveClient;

  beforeAll(async () => {
    await Promise.all([sys.start('api'), sys.start('projector'), sys.start('fanout')]);
    live = await LiveClient.connect(sys.live);
  });
  afterAll(() => live?.close());

  /** The caption and analytics projections have applied everything in the captions topic. */
  const caughtUp = () =>
    waitFor(
      'the projections to apply the log',
      async () => {
        const ends = await sys.log.offsets('captions');
        const positions = await sys.db
          .selectFrom('projection_positions')
          .selectAll()
          .where('topic', '=', 'captions')
          .where('projection', 'in', ['captions_v1', 'analytics_v1'])
          .execute();
        return ends.every((e) =>
          ['captions_v1', 'analytics_v1'].every(
            (p) => (positions.find((x) => x.projection === p && x.partition === e.partition)?.next_offset ?? -1) >= e.high,
          ),
        );
      },
      60_000,
      100,
    );

  it('keep what the rule keeps, case by case', async () => {
    const channels = [...new Set(REPEAT_CASES.flatMap((c, i) => c.batches.flat().map((t) => caseFragment('log', i, t).channel)))];
    for (const channel of channels) live.subscribe(channel);
    await waitFor('every subscription', () =>
      channels.every((ch) => live.messages.some((m) => m.type === 'subscribed' && m.channel === ch)),
    );

    const keys = new Map<string, string>();
    const keyOf = async (station: string) => keys.get(station) ?? keys.set(station, await sys.stationKey(station)).get(station)!;
    for (const [i, c] of REPEAT_CASES.entries()) {
      for (const batch of c.batches) {
        // A request carries one station's fragments on one channel: consecutive runs of the batch.
        const fs = batch.map((t) => caseFragment('log', i, t));
        for (let from = 0; from < fs.length;) {
          let to = from + 1;
          while (to < fs.length && fs[to]!.channel === fs[from]!.channel && fs[to]!.station === fs[from]!.station) to++;
          const run = fs.slice(from, to);
          const r = await sys.postJson(
            run[0]!.channel,
            await keyOf(`log${i}-${run[0]!.station}`),
            run.map((f) => fragment(f.seq, formatFragment(f))),
          );
          expect(r.status).toBe(200);
          from = to;
        }
        // The next batch comes after this one is applied: across batches, the stored last seqs decide.
        await caughtUp();
      }
    }
    // One last fragment per channel: once the fanout has sent it, it has sent everything before it.
    for (const channel of channels) expect((await sys.postJson(channel, await keyOf(LAST), [fragment(0, 'end')])).status).toBe(200);
    await waitFor(
      'the last fragment of every channel',
      () => channels.every((ch) => live.captions(ch).some((m) => m.station === LAST)),
      30_000,
    );
    await caughtUp();

    for (const [i, c] of REPEAT_CASES.entries()) {
      const prefix = `log${i}.`;
      const expected = byChannel(c.kept);
      const inModel: Record<string, string[]> = {};
      const inLive: Record<string, string[]> = {};
      const counted: Record<string, number> = {};
      for (const channel of Object.keys(byChannel(c.batches.flat()))) {
        const full = prefix + channel;
        const named = (m: { station: string; seq: number }) =>
          formatFragment({ channel, station: m.station.slice(`log${i}-`.length), seq: m.seq });
        const rows = await sys.db
          .selectFrom('caption_fragments')
          .select(['station', 'seq'])
          .where('channel', '=', full)
          .where('station', '!=', LAST)
          .orderBy('offset')
          .execute();
        inModel[channel] = rows.map(named);
        inLive[channel] = live
          .captions(full)
          .filter((m) => m.station !== LAST)
          .map(named);
        const { n } = await sys.db
          .selectFrom('analytics_caption_minutes')
          .select((eb) => eb.fn.sum<number>('fragments').as('n'))
          .where('channel', '=', full)
          .executeTakeFirstOrThrow();
        counted[channel] = Number(n) - 1; // less the last fragment
      }
      expect(inModel, `${c.name}: the read model`).toEqual(expected);
      expect(inLive, `${c.name}: the live fanout`).toEqual(expected);
      expect(counted, `${c.name}: analytics`).toEqual(Object.fromEntries(Object.entries(expected).map(([ch, fs]) => [ch, fs.length])));
    }

    // Verify replays the log with the rule in memory and finds the read model equal to it.
    const kept = REPEAT_CASES.reduce((n, c) => n + c.kept.length, 0);
    expect(await verifyCaptions(sys.db, sys.log)).toMatchObject({ ok: true, checked: kept + channels.length, differences: [] });
  }, 180_000);
});
