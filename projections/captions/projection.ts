// Caption history: every fragment once (a station's repeat is dropped, domain/captions/repeats.ts),
// and per channel its fragment count and last fragment time.
import { sql } from 'kysely';
import type { Projection } from '../projection.ts';
import { CAPTION_TABLES, createCaptionIndexes, createCaptionTables } from './tables.ts';

export const captionsProjection: Projection<'captions'> = {
  name: 'captions',
  topics: ['captions'],
  views: CAPTION_TABLES,
  createTables: createCaptionTables,
  createIndexes: createCaptionIndexes,
  async apply(trx, records) {
    const rows = records.filter((r) => r.event.type === 'CaptionFragmentReceived');
    if (!rows.length) return;
    const data = rows.map((r) => r.event.data);
    // One statement for the whole batch (unnest is far faster than row-by-row inserts). The repeat
    // rule of domain/captions/repeats.ts (isRepeat), said in SQL: a fragment whose seq is not above
    // the last one from its station on its channel, earlier in this batch (`earlier`) or before it
    // (station_seqs), is dropped; -1 is its NO_SEQ. The cases of test/cases/station-repeats.ts run
    // against this statement (test/integration/station-repeats.test.ts) and the module alike.
    await sql`
      WITH batch AS (
        SELECT * FROM unnest(
          ${data.map((d) => d.channel)}::text[], ${rows.map((r) => r.partition)}::int[],
          ${rows.map((r) => r.offset)}::bigint[], ${data.map((d) => d.station)}::text[],
          ${data.map((d) => d.seq)}::bigint[], ${data.map((d) => d.text)}::text[],
          ${data.map((d) => d.start)}::bigint[], ${data.map((d) => d.end)}::bigint[],
          ${data.map((d) => d.mode)}::text[], ${data.map((d) => d.lang)}::text[],
          ${data.map((d) => d.receivedAt)}::bigint[])
          AS b(channel, partition, "offset", station, seq, text, start_ms, end_ms, mode, lang, received_at_ms)
      ), fresh AS (
        SELECT b.* FROM (
          SELECT b.*, max(b.seq) OVER (PARTITION BY b.channel, b.station ORDER BY b.partition, b."offset"
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS earlier
          FROM batch b
        ) b
        LEFT JOIN station_seqs s ON s.channel = b.channel AND s.station = b.station
        WHERE b.seq > greatest(coalesce(b.earlier, -1), coalesce(s.last_seq, -1))
      ), ins AS (
        INSERT INTO caption_fragments
          (channel, partition, "offset", station, seq, text, start_ms, end_ms, mode, lang, received_at_ms)
        SELECT channel, partition, "offset", station, seq, text, start_ms, end_ms, mode, lang, received_at_ms FROM fresh
        ON CONFLICT DO NOTHING
        RETURNING channel, station, seq, partition, "offset", start_ms
      ), seqs AS (
        INSERT INTO station_seqs (channel, station, last_seq)
        SELECT channel, station, max(seq) FROM ins GROUP BY channel, station
        ON CONFLICT (channel, station) DO UPDATE SET last_seq = greatest(station_seqs.last_seq, excluded.last_seq)
      ), per_channel AS (
        SELECT channel, count(*) AS n, max(start_ms) AS last_ms,
               (array_agg(partition::text || ':' || "offset"::text ORDER BY "offset" DESC))[1] AS last_position
        FROM ins GROUP BY channel
      )
      INSERT INTO channels (id, fragment_count, last_fragment_ms, last_position)
      SELECT channel, n, last_ms, last_position FROM per_channel
      ON CONFLICT (id) DO UPDATE SET
        fragment_count = channels.fragment_count + excluded.fragment_count,
        last_fragment_ms = greatest(channels.last_fragment_ms, excluded.last_fragment_ms),
        last_position = excluded.last_position`.execute(trx);
  },
};
