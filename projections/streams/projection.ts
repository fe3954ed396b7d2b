// Who watches what: viewers, their per-user limit and their current leases.
import type { Projection } from '../projection.ts';
import { firstTime } from '../applied-versions.ts';
import { STREAM_TABLES, createStreamTables } from './tables.ts';
import type { EventDataMap } from '../../schemas/types.generated.ts';

const NAME = 'streams';

export const streamsProjection: Projection = {
  name: NAME,
  topics: ['streams'],
  views: STREAM_TABLES,
  createTables: createStreamTables,
  async apply(trx, records) {
    for (const r of records) {
      if (!(await firstTime(trx, NAME, r))) continue;
      const { type } = r.event;
      switch (type) {
        case 'UserIdIssued': {
          const d = r.event.data as EventDataMap['UserIdIssued'];
          await trx.insertInto('viewers').values({ user_id: d.userId, stream_limit: null, issued_at_ms: d.at }).onConflict((oc) => oc.doNothing()).execute();
          break;
        }
        case 'UserLimitSet': {
          const d = r.event.data as EventDataMap['UserLimitSet'];
          await trx.updateTable('viewers').set({ stream_limit: d.limit }).where('user_id', '=', d.userId).execute();
          break;
        }
        case 'StreamActivated': {
          const d = r.event.data as EventDataMap['StreamActivated'];
          await trx
            .insertInto('viewer_leases')
            .values({ user_id: d.userId, stream_id: d.streamId, activated_at_ms: d.at, expires_at_ms: d.expiresAt })
            .onConflict((oc) => oc.columns(['user_id', 'stream_id']).doUpdateSet({ activated_at_ms: d.at, expires_at_ms: d.expiresAt }))
            .execute();
          break;
        }
        case 'StreamHeartbeat': {
          const d = r.event.data as EventDataMap['StreamHeartbeat'];
          await trx.updateTable('viewer_leases').set({ expires_at_ms: d.expiresAt }).where('user_id', '=', d.userId).where('stream_id', '=', d.streamId).execute();
          break;
        }
        case 'StreamDeactivated': {
          const d = r.event.data as EventDataMap['StreamDeactivated'];
          await trx.deleteFrom('viewer_leases').where('user_id', '=', d.userId).where('stream_id', '=', d.streamId).execute();
          break;
        }
        default:
          break; // StreamIdIssued, ActivationRejected: nothing to keep here
      }
    }
  },
};
