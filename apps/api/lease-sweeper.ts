// Records the expiry of leases whose player stopped renewing. Decisions never count an expired
// lease anyway; this makes the expiry an event (StreamDeactivated {reason: "expired"}) soon after.
// Any number of API instances may run it: a transaction-scoped advisory lock lets one sweep at a
// time, and the decider makes a repeated expiry a no-op.
import { sql } from 'kysely';
import type { Db } from '../../projections/database.ts';
import type { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import type { Logger } from '../../infra/logger.ts';
import { viewer, viewerStream } from '../../domain/streams/viewer.ts';
import { LOCKS, lockKey } from '../../infra/locks.ts';
import { usersWithExpiredLeases } from '../../projections/streams/queries.ts';

export function startLeaseSweeper(db: Db, handler: CommandHandler, logger: Logger, everyMs = 1000): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const sweep = async () => {
    try {
      const due = await db.transaction().execute(async (trx) => {
        const { rows } = await sql<{ ok: boolean }>`SELECT pg_try_advisory_xact_lock(${lockKey(LOCKS.leaseSweep)}) AS ok`.execute(trx);
        if (!rows[0]?.ok) return [];
        return usersWithExpiredLeases(trx, Date.now(), 500);
      });
      for (const { user_id } of due) {
        if (stopped) return;
        await handler.handle(viewer, viewerStream(user_id), () => ({ type: 'ExpireLeases' as const, userId: user_id, now: Date.now() }), {
          key: user_id,
          source: '/api/lease-sweeper',
        });
      }
    } catch (err) {
      logger.warn({ err }, 'lease sweep failed');
    } finally {
      if (!stopped) timer = setTimeout(() => void sweep(), everyMs);
    }
  };
  timer = setTimeout(() => void sweep(), everyMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
