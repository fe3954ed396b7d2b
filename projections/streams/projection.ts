// Who watches what: viewers, their per-user limit and their current leases.
// A batch is a few statements whatever its size: the repeats dropped in one round trip
// (firstTimes), then each viewer's and each lease's events folded here into the one change they
// make, written a kind at a time.
import { sql } from 'kysely';
import { noEventLeft, type Projection } from '../projection.ts';
import { firstTimes } from '../applied-versions.ts';
import { STREAM_TABLES, createStreamTables } from './tables.ts';

const NAME = 'streams';

/** What a lease's events in one batch come to, applied in order. */
type LeaseChange =
  | { kind: 'upsert'; activatedAt: number; expiresAt: number }
  /** A heartbeat: renews the lease if it is there. */
  | { kind: 'renew'; expiresAt: number }
  | { kind: 'delete' };

export const streamsProjection: Projection<'streams'> = {
  name: NAME,
  topics: ['streams'],
  // A tenth of a second to gather a batch: read only by a user's list of streams and the lease
  // sweeper (decisions decide on the event store). At 300 decisions/s it took the machine's CPU per
  // decision down by 5–10%: a relay step's few events came as a transaction per partition.
  lingerMs: { streams: 100 },
  views: STREAM_TABLES,
  createTables: createStreamTables,
  async apply(trx, records) {
    const issued = new Map<string, number>();
    const limits = new Map<string, number>();
    const leases = new Map<string, { userId: string; streamId: string; change: LeaseChange }>();
    const lease = (userId: string, streamId: string, change: (before: LeaseChange | undefined) => LeaseChange) => {
      const key = `${userId}\u0000${streamId}`;
      leases.set(key, { userId, streamId, change: change(leases.get(key)?.change) });
    };
    for (const r of await firstTimes(trx, NAME, records)) {
      const { type, data: d } = r.event;
      switch (type) {
        case 'UserIdIssued':
          if (!issued.has(d.userId)) issued.set(d.userId, d.at);
          break;
        case 'UserLimitSet':
          limits.set(d.userId, d.limit);
          break;
        case 'StreamActivated':
          lease(d.userId, d.streamId, () => ({ kind: 'upsert', activatedAt: d.at, expiresAt: d.expiresAt }));
          break;
        case 'StreamHeartbeat':
          lease(d.userId, d.streamId, (before) => {
            if (before?.kind === 'delete') return before; // nothing to renew
            if (before?.kind === 'upsert') return { ...before, expiresAt: d.expiresAt };
            return { kind: 'renew', expiresAt: d.expiresAt };
          });
          break;
        case 'StreamDeactivated':
          lease(d.userId, d.streamId, () => ({ kind: 'delete' }));
          break;
        case 'StreamIdIssued':
        case 'ActivationRejected':
          break; // nothing to keep here
        default:
          noEventLeft(r.event);
      }
    }
    if (issued.size)
      await sql`INSERT INTO viewers (user_id, stream_limit, issued_at_ms)
                SELECT u, NULL, at FROM unnest(${[...issued.keys()]}::text[], ${[...issued.values()]}::bigint[]) AS b(u, at)
                ON CONFLICT DO NOTHING`.execute(trx);
    if (limits.size)
      await sql`UPDATE viewers v SET stream_limit = b.l
                FROM unnest(${[...limits.keys()]}::text[], ${[...limits.values()]}::int[]) AS b(u, l) WHERE v.user_id = b.u`.execute(trx);
    const of = <K extends LeaseChange['kind']>(kind: K) =>
      [...leases.values()].flatMap((l) =>
        l.change.kind === kind ? [{ ...l, change: l.change as Extract<LeaseChange, { kind: K }> }] : [],
      );
    const [upserts, renewals, deletes] = [of('upsert'), of('renew'), of('delete')];
    const users = (ls: { userId: string }[]) => ls.map((l) => l.userId);
    const streams = (ls: { streamId: string }[]) => ls.map((l) => l.streamId);
    if (deletes.length)
      await sql`DELETE FROM viewer_leases l USING unnest(${users(deletes)}::text[], ${streams(deletes)}::text[]) AS b(u, s)
                WHERE l.user_id = b.u AND l.stream_id = b.s`.execute(trx);
    if (upserts.length)
      await sql`INSERT INTO viewer_leases (user_id, stream_id, activated_at_ms, expires_at_ms)
                SELECT * FROM unnest(${users(upserts)}::text[], ${streams(upserts)}::text[],
                                     ${upserts.map((l) => l.change.activatedAt)}::bigint[],
                                     ${upserts.map((l) => l.change.expiresAt)}::bigint[])
                ON CONFLICT (user_id, stream_id) DO UPDATE SET
                  activated_at_ms = excluded.activated_at_ms, expires_at_ms = excluded.expires_at_ms`.execute(trx);
    if (renewals.length)
      await sql`UPDATE viewer_leases l SET expires_at_ms = b.e
                FROM unnest(${users(renewals)}::text[], ${streams(renewals)}::text[],
                            ${renewals.map((l) => l.change.expiresAt)}::bigint[]) AS b(u, s, e)
                WHERE l.user_id = b.u AND l.stream_id = b.s`.execute(trx);
  },
};
