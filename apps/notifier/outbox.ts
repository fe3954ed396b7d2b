// The notifier's side of the outbox: claiming deliveries that are due, and recording how each
// attempt went. A delivery's state changes once per attempt, each in one transaction:
//   pending --claim--> sending --attempt--> sent | pending (try again later) | failed
//   sending (its notifier died mid-send) --sweep--> interrupted
// Claims take rows FOR UPDATE SKIP LOCKED, so several notifiers never claim one row, and a row is
// 'sending' (committed) before anything leaves: whatever happens next, it is not sent twice.
import { sql, type Selectable } from 'kysely';
import { nextAttemptAt, retryUntil, type RetryPolicy } from '../../domain/deliveries/retry-schedule.ts';
import type { DeliveriesTable, WriteDb as Db } from '../../infra/write-tables.ts';
import { LOCKS, lockKey } from '../../infra/locks.ts';

export type Delivery = Selectable<DeliveriesTable>;

/** How one attempt went, for every delivery it carried (a digest e-mail carries several). */
export interface AttemptOutcome {
  startedAt: number;
  durationMs: number;
  /** The HTTP status (webhooks) or SMTP reply code (e-mail), when there was one. */
  status: number | null;
  /** null: delivered. */
  error: string | null;
  /** The failure will not go away by trying again (a refused destination, a rejected address). */
  permanent?: boolean;
}

/** E-mails of one alert in one digest at most; the rest wait for the next one. */
export const DIGEST_MAX = 100;

const INTERRUPTED =
  'interrupted: the notifier sending it stopped mid-send, so it may or may not have arrived; ' +
  'it is not sent again by itself (redeliver it to send it again)';

export class Outbox {
  /**
   * The id this notifier claims under, while it holds the lock named after it (liveness.ts);
   * undefined while it holds none, and then it claims nothing.
   */
  holder: string | undefined;

  constructor(
    private readonly db: Db,
    private readonly policy: RetryPolicy,
  ) {}

  /** Claims up to `limit` webhooks that are due, oldest due first. */
  async claimWebhooks(limit: number, now: number): Promise<Delivery[]> {
    if (limit <= 0 || !this.holder) return [];
    return this.db.transaction().execute(async (trx) => {
      const due = await trx
        .selectFrom('deliveries')
        .select('id')
        .where('state', '=', 'pending')
        .where('kind', '=', 'webhook')
        .where('next_attempt_at_ms', '<=', now)
        .orderBy('next_attempt_at_ms')
        .limit(limit)
        .forUpdate()
        .skipLocked()
        .execute();
      return this.markSending(
        trx,
        due.map((d) => d.id),
        now,
      );
    });
  }

  /** When the next pending delivery is due (undefined: none is pending). */
  async nextDueAt(): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('deliveries')
      .select((eb) => eb.fn.min('next_attempt_at_ms').as('due'))
      .where('state', '=', 'pending')
      .executeTakeFirst();
    return row?.due === null || row?.due === undefined ? undefined : Number(row.due);
  }

  /** Alerts with e-mail due now (at most `limit` of them). */
  async alertsWithEmailDue(limit: number, now: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('deliveries')
      .select('alert_id')
      .distinct()
      .where('state', '=', 'pending')
      .where('kind', '=', 'email')
      .where('next_attempt_at_ms', '<=', now)
      .where('alert_id', 'is not', null)
      .limit(limit)
      .execute();
    return rows.map((r) => r.alert_id!);
  }

  /**
   * Claims the alert's e-mails that are due, for one message to one address, when the alert may
   * e-mail now (at most one e-mail per `intervalMs`); otherwise they are put off until it may, and
   * nothing is claimed. Nothing either when another notifier is deciding this alert's e-mail.
   */
  async claimEmails(alertId: string, intervalMs: number, now: number): Promise<Delivery[]> {
    if (!this.holder) return [];
    return this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('alert_email_pacing')
        .values({ alert_id: alertId, next_email_at_ms: 0 })
        .onConflict((oc) => oc.column('alert_id').doNothing())
        .execute();
      const pace = await trx
        .selectFrom('alert_email_pacing')
        .select('next_email_at_ms')
        .where('alert_id', '=', alertId)
        .forUpdate()
        .skipLocked()
        .executeTakeFirst();
      if (!pace) return [];
      const pending = trx
        .updateTable('deliveries')
        .where('alert_id', '=', alertId)
        .where('kind', '=', 'email')
        .where('state', '=', 'pending');
      if (pace.next_email_at_ms > now) {
        // Gathered into the digest that leaves when the interval is over.
        await pending.set({ next_attempt_at_ms: pace.next_email_at_ms }).where('next_attempt_at_ms', '<', pace.next_email_at_ms).execute();
        return [];
      }
      const due = await trx
        .selectFrom('deliveries')
        .select(['id', 'target'])
        .where('alert_id', '=', alertId)
        .where('kind', '=', 'email')
        .where('state', '=', 'pending')
        .where('next_attempt_at_ms', '<=', now)
        .orderBy('id')
        .limit(DIGEST_MAX)
        .forUpdate()
        .skipLocked()
        .execute();
      const to = due[0]?.target;
      if (to === undefined) return [];
      await trx
        .updateTable('alert_email_pacing')
        .set({ next_email_at_ms: now + intervalMs })
        .where('alert_id', '=', alertId)
        .execute();
      return this.markSending(
        trx,
        due.filter((d) => d.target === to).map((d) => d.id),
        now,
      );
    });
  }

  private async markSending(trx: Db, ids: number[], now: number): Promise<Delivery[]> {
    const holder = this.holder;
    if (ids.length === 0 || !holder) return [];
    const rows = await trx
      .updateTable('deliveries')
      .set((eb) => ({
        state: 'sending',
        claimed_by: holder,
        claimed_at_ms: now,
        attempts: eb('attempts', '+', 1),
        series_attempts: eb('series_attempts', '+', 1),
      }))
      .where('id', 'in', ids)
      .returningAll()
      .execute();
    return rows.sort((a, b) => a.id - b.id);
  }

  /**
   * Records an attempt of claimed deliveries and what follows: sent, tried again later (until the
   * series' window closes), or failed. Rows this notifier no longer holds are left alone.
   */
  async finish(claimed: Delivery[], outcome: AttemptOutcome, now: number): Promise<void> {
    if (claimed.length === 0) return;
    await this.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('delivery_attempts')
        .values(
          claimed.map((d) => ({
            delivery_id: d.id,
            attempt: d.attempts,
            at_ms: outcome.startedAt,
            duration_ms: Math.max(0, Math.round(outcome.durationMs)),
            status: outcome.status,
            error: outcome.error,
          })),
        )
        .onConflict((oc) => oc.columns(['delivery_id', 'attempt']).doNothing())
        .execute();
      for (const d of claimed) {
        const retryAt =
          outcome.error === null || outcome.permanent
            ? undefined
            : nextAttemptAt(this.policy, d.series_attempts, now, retryUntil(this.policy, d.created_at_ms, d.retry_until_ms));
        const next =
          outcome.error === null
            ? { state: 'sent' as const, sent_at_ms: now, last_error: null }
            : retryAt !== undefined
              ? { state: 'pending' as const, next_attempt_at_ms: retryAt, last_error: outcome.error }
              : { state: 'failed' as const, last_error: outcome.error };
        await this.held(trx, d)
          .set({ ...next, claimed_by: null, claimed_at_ms: null })
          .execute();
      }
    });
  }

  /** Gives claimed deliveries up without an attempt: nothing was sent (the alert was deleted, say). */
  async cancel(claimed: Delivery[], reason: string): Promise<void> {
    for (const d of claimed) {
      await this.held(this.db, d)
        .set({ state: 'failed', last_error: `cancelled: ${reason}`, claimed_by: null, claimed_at_ms: null })
        .execute();
    }
  }

  /**
   * An update of a claimed delivery, if it is still held under the claim's id: once the session
   * holding that id's lock ended, another notifier may have marked it interrupted, and it stays so.
   */
  private held(db: Db, d: Delivery) {
    return db
      .updateTable('deliveries')
      .where('id', '=', d.id)
      .where('state', '=', 'sending')
      .where('claimed_by', '=', d.claimed_by ?? '');
  }

  /**
   * Marks 'interrupted' every delivery left 'sending' by a notifier that is gone: its lock is free
   * (it is held by a live notifier's session for as long as that notifier runs). Returns their ids.
   */
  async sweepInterrupted(now: number): Promise<number[]> {
    const holders = await this.db.selectFrom('deliveries').select('claimed_by').distinct().where('state', '=', 'sending').execute();
    const swept: number[] = [];
    for (const { claimed_by: holder } of holders) {
      if (holder === this.holder || (holder !== null && !(await this.isGone(holder)))) continue;
      const rows = await this.db.transaction().execute(async (trx) => {
        let q = trx
          .updateTable('deliveries')
          .set({ state: 'interrupted', last_error: INTERRUPTED, claimed_by: null, claimed_at_ms: null })
          .where('state', '=', 'sending');
        q = holder === null ? q.where('claimed_by', 'is', null) : q.where('claimed_by', '=', holder);
        const interrupted = await q.returning(['id', 'attempts', 'claimed_at_ms']).execute();
        if (interrupted.length) {
          await trx
            .insertInto('delivery_attempts')
            .values(
              interrupted.map((d) => ({
                delivery_id: d.id,
                attempt: d.attempts,
                at_ms: d.claimed_at_ms ?? now,
                duration_ms: Math.max(0, now - (d.claimed_at_ms ?? now)),
                status: null,
                error: INTERRUPTED,
              })),
            )
            .onConflict((oc) => oc.columns(['delivery_id', 'attempt']).doNothing())
            .execute();
        }
        return interrupted;
      });
      swept.push(...rows.map((r) => r.id));
    }
    return swept;
  }

  /** True when no session holds notifier `id`'s lock: that notifier has stopped. */
  private async isGone(id: string): Promise<boolean> {
    const key = lockKey(LOCKS.notifier(id));
    // Taken and let go at once on one session, or the lock would stay with this pool's connection.
    return this.db.connection().execute(async (conn) => {
      const { rows } = await sql<{ free: boolean }>`SELECT pg_try_advisory_lock(${key}) AS free`.execute(conn);
      const free = rows[0]?.free === true;
      if (free) await sql`SELECT pg_advisory_unlock(${key})`.execute(conn);
      return free;
    });
  }
}
