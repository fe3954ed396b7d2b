// Caption history: every fragment once (a station's repeat is dropped, domain/captions/repeats.ts),
// and per channel its fragment count and last fragment time.
import { sql } from 'kysely';
import { LastSeqs } from '../../domain/captions/repeats.ts';
import { copyRows } from '../../infra/copy.ts';
import type { Projection } from '../projection.ts';
import { CAPTION_INDEXES, CAPTION_TABLES, createCaptionTables } from './tables.ts';

/** A fragment row's columns in the order the projector COPYs them (the bench copies the same). */
export const FRAGMENT_COLUMNS = [
  'channel',
  'partition',
  'offset',
  'station',
  'seq',
  'text',
  'start_ms',
  'end_ms',
  'mode',
  'lang',
  'received_at_ms',
] as const;

export const captionsProjection: Projection<'captions'> = {
  name: 'captions',
  topics: ['captions'],
  views: CAPTION_TABLES,
  createTables: createCaptionTables,
  indexes: CAPTION_INDEXES,
  async apply(trx, records) {
    const rows = records.filter((r) => r.event.type === 'CaptionFragmentReceived');
    if (!rows.length) return;
    // Three round trips for the whole batch: the last seqs of its stations, a COPY of the fresh
    // fragments (the bulk path; INSERT … unnest ran at about half its speed), and the per-station
    // and per-channel counters. A batch is one partition's records in log order, and a channel
    // lives in one partition, so no other transaction moves these stations' seqs meanwhile.
    const pairs = new Map(rows.map(({ event: { data: d } }) => [`${d.channel}\u0000${d.station}`, d]));
    const known = await sql<{ channel: string; station: string; last_seq: number }>`
      SELECT s.channel, s.station, s.last_seq FROM station_seqs s
      JOIN unnest(${[...pairs.values()].map((d) => d.channel)}::text[], ${[...pairs.values()].map((d) => d.station)}::text[])
        AS b(channel, station) USING (channel, station)`.execute(trx);
    const last = new LastSeqs();
    for (const s of known.rows) last.seed(s.channel, s.station, s.last_seq);
    // The repeat rule itself (isRepeat), in log order: a seq not above its station's last is dropped.
    const fresh = rows.filter((r) => last.admit(r.event.data));
    if (!fresh.length) return;
    await copyRows(
      trx,
      'caption_fragments',
      FRAGMENT_COLUMNS,
      fresh.map(({ partition, offset, event: { data: d } }) => [
        d.channel,
        partition,
        offset,
        d.station,
        d.seq,
        d.text,
        d.start,
        d.end,
        d.mode,
        d.lang,
        d.receivedAt,
      ]),
    );
    const channels = new Map<string, { n: number; lastMs: number; lastPosition: string }>();
    const stations = new Map<string, { channel: string; station: string; seq: number }>();
    for (const {
      partition,
      offset,
      event: { data: d },
    } of fresh) {
      const c = channels.get(d.channel);
      const position = `${partition}:${offset}`;
      if (c) Object.assign(c, { n: c.n + 1, lastMs: Math.max(c.lastMs, d.start), lastPosition: position });
      else channels.set(d.channel, { n: 1, lastMs: d.start, lastPosition: position });
      stations.set(`${d.channel}\u0000${d.station}`, { channel: d.channel, station: d.station, seq: d.seq });
    }
    const st = [...stations.values()];
    const ch = [...channels];
    await sql`
      WITH seqs AS (
        INSERT INTO station_seqs (channel, station, last_seq)
        SELECT * FROM unnest(${st.map((s) => s.channel)}::text[], ${st.map((s) => s.station)}::text[], ${st.map((s) => s.seq)}::bigint[])
        ON CONFLICT (channel, station) DO UPDATE SET last_seq = greatest(station_seqs.last_seq, excluded.last_seq)
      )
      INSERT INTO channels (id, fragment_count, last_fragment_ms, last_position)
      SELECT * FROM unnest(${ch.map(([id]) => id)}::text[], ${ch.map(([, c]) => c.n)}::bigint[],
                           ${ch.map(([, c]) => c.lastMs)}::bigint[], ${ch.map(([, c]) => c.lastPosition)}::text[])
      ON CONFLICT (id) DO UPDATE SET
        fragment_count = channels.fragment_count + excluded.fragment_count,
        last_fragment_ms = greatest(channels.last_fragment_ms, excluded.last_fragment_ms),
        last_position = excluded.last_position`.execute(trx);
  },
};
