// The deliveries a user may see and act on (the api's /v1/deliveries and unsubscribe), over the
// outbox the notifier sends from (deliveries and delivery_attempts). Each is its owner's alone.
import type { Selectable } from 'kysely';
import type { DeliveriesTable, DeliveryAttemptsTable, DeliveryState, WriteDb as Db } from './write-tables.ts';

/** Attempts shown with each delivery in a list: the latest ones. */
const ATTEMPTS_SHOWN = 20;

export interface DeliveryView {
  id: number;
  kind: 'email' | 'webhook';
  cause: string;
  alertId: string | null;
  jobId: string | null;
  target: string;
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: number | null;
  createdAt: number;
  sentAt: number | null;
  lastError: string | null;
  /** The latest attempts, oldest first. */
  attemptLog: { attempt: number; at: number; durationMs: number; status: number | null; error: string | null }[];
}

const view = (d: Selectable<DeliveriesTable>, attempts: Selectable<DeliveryAttemptsTable>[]): DeliveryView => ({
  id: d.id,
  kind: d.kind,
  cause: d.cause,
  alertId: d.alert_id,
  jobId: d.job_id,
  target: d.target,
  state: d.state,
  attempts: d.attempts,
  nextAttemptAt: d.state === 'pending' ? d.next_attempt_at_ms : null,
  createdAt: d.created_at_ms,
  sentAt: d.sent_at_ms,
  lastError: d.last_error,
  attemptLog: attempts
    .filter((a) => a.delivery_id === d.id)
    .sort((a, b) => a.attempt - b.attempt)
    .slice(-ATTEMPTS_SHOWN)
    .map((a) => ({ attempt: a.attempt, at: a.at_ms, durationMs: a.duration_ms, status: a.status, error: a.error })),
});

async function withAttempts(db: Db, rows: Selectable<DeliveriesTable>[]): Promise<DeliveryView[]> {
  if (rows.length === 0) return [];
  const attempts = await db
    .selectFrom('delivery_attempts')
    .selectAll()
    .where(
      'delivery_id',
      'in',
      rows.map((r) => r.id),
    )
    .execute();
  return rows.map((r) => view(r, attempts));
}

/** A page of the user's deliveries (of one alert or job when asked), by id; `next` is the cursor of the next page. */
export async function listDeliveries(
  db: Db,
  userId: string,
  filter: { alertId?: string; jobId?: string },
  after: number | undefined,
  limit: number,
): Promise<{ items: DeliveryView[]; next: number | null }> {
  let q = db.selectFrom('deliveries').selectAll().where('user_id', '=', userId);
  if (filter.alertId !== undefined) q = q.where('alert_id', '=', filter.alertId);
  if (filter.jobId !== undefined) q = q.where('job_id', '=', filter.jobId);
  if (after !== undefined) q = q.where('id', '>', after);
  const rows = await q
    .orderBy('id')
    .limit(limit + 1)
    .execute();
  const page = rows.slice(0, limit);
  return { items: await withAttempts(db, page), next: rows.length > limit ? page.at(-1)!.id : null };
}

/** The user's delivery `id`, or undefined when there is none of theirs. */
export async function deliveryOf(db: Db, userId: string, id: number): Promise<DeliveryView | undefined> {
  const row = await db.selectFrom('deliveries').selectAll().where('id', '=', id).where('user_id', '=', userId).executeTakeFirst();
  return row && (await withAttempts(db, [row]))[0];
}

/**
 * Sends the user's delivery again, as a new series of attempts: `not_found` when it is not theirs,
 * `in_flight` when it is waiting or being sent already.
 */
export async function redeliver(
  db: Db,
  userId: string,
  id: number,
  now: number,
  windowMs: number,
): Promise<'not_found' | 'in_flight' | DeliveryView> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('deliveries')
      .select('state')
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .forUpdate()
      .executeTakeFirst();
    if (!row) return 'not_found';
    if (row.state === 'pending' || row.state === 'sending') return 'in_flight';
    const updated = await trx
      .updateTable('deliveries')
      .set({ state: 'pending', next_attempt_at_ms: now, retry_until_ms: now + windowMs, series_attempts: 0, last_error: null })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    return (await withAttempts(trx, [updated]))[0]!;
  });
}

/** Stops the alert's e-mails that have not left yet, saying why (an unsubscribe, a deleted alert). */
export async function cancelPendingEmails(db: Db, alertId: string, reason: string): Promise<number> {
  const rows = await db
    .updateTable('deliveries')
    .set({ state: 'failed', last_error: `cancelled: ${reason}` })
    .where('alert_id', '=', alertId)
    .where('kind', '=', 'email')
    .where('state', '=', 'pending')
    .returning('id')
    .execute();
  return rows.length;
}
