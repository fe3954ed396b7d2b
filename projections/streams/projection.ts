// Who watches what: viewers, their per-user limit and their current leases.
import { noEventLeft, type Projection } from '../projection.ts';
import { firstTime } from '../applied-versions.ts';
import { STREAM_TABLES, createStreamTables } from './tables.ts';

const NAME = 'streams';

export const streamsProjection: Projection<'streams'> = {
  name: NAME,
  topics: ['streams'],
  views: STREAM_TABLES,
  createTables: createStreamTables,
  async apply(trx, records) {
    for (const r of records) {
      if (!(await firstTime(trx, NAME, r))) continue;
      const { type, data: d } = r.event;
      switch (type) {
        case 'UserIdIssued':
          await trx
            .insertInto('viewers')
            .values({ user_id: d.userId, stream_limit: null, issued_at_ms: d.at })
            .onConflict((oc) => oc.doNothing())
            .execute();
          break;
        case 'UserLimitSet':
          await trx.updateTable('viewers').set({ stream_limit: d.limit }).where('user_id', '=', d.userId).execute();
          break;
        case 'StreamActivated':
          await trx
            .insertInto('viewer_leases')
            .values({ user_id: d.userId, stream_id: d.streamId, activated_at_ms: d.at, expires_at_ms: d.expiresAt })
            .onConflict((oc) => oc.columns(['user_id', 'stream_id']).doUpdateSet({ activated_at_ms: d.at, expires_at_ms: d.expiresAt }))
            .execute();
          break;
        case 'StreamHeartbeat':
          await trx
            .updateTable('viewer_leases')
            .set({ expires_at_ms: d.expiresAt })
            .where('user_id', '=', d.userId)
            .where('stream_id', '=', d.streamId)
            .execute();
          break;
        case 'StreamDeactivated':
          await trx.deleteFrom('viewer_leases').where('user_id', '=', d.userId).where('stream_id', '=', d.streamId).execute();
          break;
        case 'StreamIdIssued':
        case 'ActivationRejected':
          break; // nothing to keep here
        default:
          noEventLeft(r.event);
      }
    }
  },
};
