// The fanout's view of the caption read model, for clients resuming from further back than memory.
import { sql } from 'kysely';
import { formatPosition } from '../../domain/position.ts';
import type { Db } from '../../infra/db.ts';
import type { CaptionArchive } from './hub.ts';
import type { ReplaySource } from './replay.ts';
import { captionMessage } from './protocol.ts';
import { FRAGMENT_COLUMNS } from '../../projections/captions/tables.ts';

export function postgresArchive(db: Db): CaptionArchive {
  return {
    // One snapshot for the rows and the projection's position: a row committed in between
    // cannot be skipped.
    after: (channel, partition, offset, limit) =>
      db.transaction().setIsolationLevel('repeatable read').execute(async (trx) => {
        const rows = await trx
          .selectFrom('caption_fragments')
          .select(FRAGMENT_COLUMNS)
          .where('channel', '=', channel).where('partition', '=', partition).where('offset', '>', offset)
          .orderBy('offset')
          .limit(limit)
          .execute();
        const pos = await trx
          .selectFrom('projection_positions')
          .select('next_offset')
          // The serving version's position: the views show that version's rows.
          .where('projection', '=', sql<string>`(SELECT 'captions_v' || current FROM projection_versions WHERE name = 'captions')`)
          .where('topic', '=', 'captions').where('partition', '=', partition)
          .executeTakeFirst();
        return {
          appliedUpTo: pos?.next_offset ?? 0,
          rows: rows.map((r) => ({
            offset: r.offset,
            channel,
            json: captionMessage(
              { channel, station: r.station, seq: r.seq, text: r.text, start: r.start_ms, end: r.end_ms, mode: r.mode as never, lang: r.lang },
              formatPosition(r),
            ),
          })),
        };
      }),
  };
}

/** Captions by time, for replays. */
export function postgresReplaySource(db: Db): ReplaySource {
  return {
    async page(channel, from, to, after, limit) {
      let q = db.selectFrom('caption_fragments').select(FRAGMENT_COLUMNS).where('channel', '=', channel).where('start_ms', '>=', from).where('start_ms', '<', to);
      if (after) q = q.where((eb) => eb.or([eb('start_ms', '>', after.start), eb.and([eb('start_ms', '=', after.start), eb('offset', '>', after.offset)])]));
      const rows = await q.orderBy('start_ms').orderBy('offset').limit(limit).execute();
      return rows.map((r) => ({
        channel, partition: r.partition, offset: r.offset, station: r.station, seq: r.seq, text: r.text,
        start: r.start_ms, end: r.end_ms, mode: r.mode as never, lang: r.lang,
      }));
    },
  };
}
