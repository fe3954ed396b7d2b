// The fanout's view of the caption read model, for clients resuming from further back than memory.
import { formatPosition } from '../../domain/position.ts';
import type { Db } from '../../projections/database.ts';
import { fragmentOf, fragmentsAfter, fragmentsByTime } from '../../projections/captions/queries.ts';
import type { CaptionArchive } from './hub.ts';
import type { ReplaySource } from './replay.ts';
import { captionMessage } from './protocol.ts';

export function postgresArchive(db: Db): CaptionArchive {
  return {
    // The rows and the position the projection has applied come from one snapshot (fragmentsAfter):
    // a row committed in between cannot be skipped.
    after: async (channel, partition, offset, limit) => {
      const { rows, appliedUpTo } = await fragmentsAfter(db, channel, partition, offset, limit);
      return {
        appliedUpTo,
        rows: rows.map((r) => ({ offset: r.offset, channel, json: captionMessage({ ...fragmentOf(r), channel }, formatPosition(r)) })),
      };
    },
  };
}

/** Captions by time, for replays. */
export function postgresReplaySource(db: Db): ReplaySource {
  return {
    async page(channel, from, to, after, limit) {
      const rows = await fragmentsByTime(db, channel, { from, to }, after, limit);
      return rows.map((r) => ({ ...fragmentOf(r), channel, partition: r.partition, offset: r.offset }));
    },
  };
}
