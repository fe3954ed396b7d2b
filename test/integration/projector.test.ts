// The read model survives the projector being killed at any moment: every acknowledged fragment
// is there exactly once, however often it dies.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { System, fragment, waitFor } from '../support/system.ts';

let sys: System;
beforeAll(async () => {
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('projector')]);
});
afterAll(() => sys?.stop());

it('holds every acknowledged fragment exactly once after kill -9 in the middle of a stream', async () => {
  const key = await sys.stationKey('crash-station');
  const channels = ['crash.a', 'crash.b', 'crash.c', 'crash.d'];
  const perChannel = 1500;
  const acked = new Map<string, number[]>(channels.map((c) => [c, []]));

  // Four stations stream NDJSON at once; a retry re-sends the previous 20 fragments (repeats).
  const streams = channels.map(async (channel) => {
    for (let from = 1; from <= perChannel; from += 250) {
      const seqs = Array.from({ length: 250 }, (_, i) => from + i);
      const retried = from > 1 ? Array.from({ length: 20 }, (_, i) => from - 20 + i) : [];
      const body = [...retried, ...seqs].map((s) => JSON.stringify(fragment(s, `${channel} #${s}`))).join('\n') + '\n';
      // A station retries a refused request, as real ones do; readers drop what repeats.
      let r = await sys.postNdjson(channel, key, body);
      for (let attempt = 1; r.status === 503 && attempt < 20; attempt++) {
        await new Promise((res) => setTimeout(res, 250));
        r = await sys.postNdjson(channel, key, body);
      }
      expect(r.status).toBe(200);
      for (const l of r.lines) if (l.position) acked.get(channel)!.push(l.seq);
    }
  });

  // Kill the projector twice while the streams run, restarting it each time.
  const killer = (async () => {
    for (let i = 0; i < 2; i++) {
      await waitFor(
        'rows to arrive',
        async () => {
          const { n } = await sys.db
            .selectFrom('caption_fragments')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .executeTakeFirstOrThrow();
          return Number(n) > (i + 1) * 1000;
        },
        60_000,
        20,
      );
      await sys.kill('projector');
      await sys.start('projector');
    }
  })();
  await Promise.all([...streams, killer]);

  for (const channel of channels) {
    const expected = [...new Set(acked.get(channel)!)].sort((a, b) => a - b);
    expect(expected).toHaveLength(perChannel);
    const rows = await waitFor(
      `${channel} complete`,
      async () => {
        const r = await sys.fragments(channel);
        return r.length >= perChannel && r;
      },
      60_000,
      200,
    );
    expect(rows.map((r) => r.seq)).toEqual(expected);
    expect(rows.map((r) => r.text)).toEqual(expected.map((s) => `${channel} #${s}`));
  }
  // The channel list agrees with the rows: counts are applied in the same transaction.
  const list = await sys.get('/v1/channels');
  for (const channel of channels) expect(list.body.channels.find((c: any) => c.id === channel).fragmentCount).toBe(perChannel);
  // And the stored positions are at the end of the log.
  const ends = await sys.log.offsets('captions');
  const positions = await sys.db.selectFrom('projection_positions').selectAll().where('projection', '=', 'captions_v1').execute();
  for (const e of ends) expect(positions.find((p) => p.partition === e.partition)?.next_offset ?? e.high).toBe(e.high);
}, 180_000);
