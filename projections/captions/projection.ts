// Caption history: every fragment once (a station's retry is dropped by (channel, station, seq)),
// and per channel its fragment count and last fragment time.
import { sql } from 'kysely';
import { formatPosition } from '../../domain/position.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';
import type { Projection, ProjectedRecord } from '../projection.ts';
import { CAPTION_TABLES, createCaptionTables } from './tables.ts';

export const captionsProjection: Projection = {
  name: 'captions',
  topics: ['captions'],
  views: CAPTION_TABLES,
  createTables: createCaptionTables,
  async apply(trx, records: ProjectedRecord[]) {
    const rows = records.filter((r) => r.event.type === 'CaptionFragmentReceived');
    if (!rows.length) return;
    const data = rows.map((r) => r.event.data as CaptionFragmentReceived);
    // One statement for the whole batch: unnest is far faster than row-by-row inserts.
    const inserted = await sql<{ channel: string; n: number; last_ms: number; last_partition: number; last_offset: number }>`
      WITH ins AS (
        INSERT INTO caption_fragments
          (channel, partition, "offset", station, seq, text, start_ms, end_ms, mode, lang, received_at_ms)
        SELECT * FROM unnest(
          ${data.map((d) => d.channel)}::text[], ${rows.map((r) => r.partition)}::int[],
          ${rows.map((r) => r.offset)}::bigint[], ${data.map((d) => d.station)}::text[],
          ${data.map((d) => d.seq)}::bigint[], ${data.map((d) => d.text)}::text[],
          ${data.map((d) => d.start)}::bigint[], ${data.map((d) => d.end)}::bigint[],
          ${data.map((d) => d.mode)}::text[], ${data.map((d) => d.lang)}::text[],
          ${data.map((d) => d.receivedAt)}::bigint[])
        ON CONFLICT DO NOTHING
        RETURNING channel, partition, "offset", start_ms
      )
      SELECT channel, count(*)::int AS n, max(start_ms) AS last_ms,
             (array_agg(partition ORDER BY "offset" DESC))[1] AS last_partition,
             max("offset") AS last_offset
      FROM ins GROUP BY channel`.execute(trx);
    for (const c of inserted.rows) {
      const position = formatPosition({ partition: c.last_partition, offset: Number(c.last_offset) });
      await trx
        .insertInto('channels')
        .values({ id: c.channel, fragment_count: c.n, last_fragment_ms: Number(c.last_ms), last_position: position })
        .onConflict((oc) =>
          oc.column('id').doUpdateSet({
            fragment_count: sql`channels.fragment_count + excluded.fragment_count`,
            last_fragment_ms: sql`greatest(channels.last_fragment_ms, excluded.last_fragment_ms)`,
            last_position: sql`excluded.last_position`,
          }),
        )
        .execute();
    }
  },
};
