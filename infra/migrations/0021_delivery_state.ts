import { sql, type Kysely } from 'kysely';

// What the notifier keeps to send each delivery once: who is sending it (a notifier that died
// mid-send leaves its rows 'sending', found by its lock being free), the retry series (a redeliver
// starts a new one), the pace of each alert's e-mails, and the webhook each encode request asked for.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE deliveries
    ADD COLUMN claimed_by text,
    ADD COLUMN claimed_at_ms bigint,
    ADD COLUMN retry_until_ms bigint,
    ADD COLUMN series_attempts integer NOT NULL DEFAULT 0`.execute(db);
  await sql`CREATE INDEX deliveries_sending ON deliveries (claimed_by) WHERE state = 'sending'`.execute(db);
  await sql`CREATE INDEX deliveries_by_job ON deliveries (job_id, id) WHERE job_id IS NOT NULL`.execute(db);
  await sql`CREATE INDEX deliveries_by_user ON deliveries (user_id, id)`.execute(db);
  // One row per alert that has e-mailed: its next e-mail may not leave before next_email_at_ms.
  // Locking it also makes one notifier at a time decide an alert's e-mail.
  await sql`CREATE TABLE alert_email_pacing (alert_id text PRIMARY KEY, next_email_at_ms bigint NOT NULL)`.execute(db);
  // Every EncodeRequested (an attempt of a job) with the webhook it asked for, if any: the job's
  // EncodeCompleted / EncodeFailed belongs to the latest request before it in the job's stream.
  await sql`CREATE TABLE encode_requests (
    job_id text NOT NULL, attempt integer NOT NULL, stream_version integer NOT NULL,
    user_id text NOT NULL, webhook_url text,
    CONSTRAINT encode_requests_pk PRIMARY KEY (job_id, attempt))`.execute(db);
  await sql`CREATE INDEX encode_requests_by_version ON encode_requests (job_id, stream_version)`.execute(db);
  // Notifiers LISTEN, so a new or redelivered delivery is sent at once rather than at the next poll.
  await sql`CREATE FUNCTION castlog_delivery_due() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('castlog_deliveries', ''); RETURN NULL; END $$`.execute(db);
  await sql`CREATE TRIGGER deliveries_due_notify AFTER INSERT OR UPDATE OF state ON deliveries
    FOR EACH ROW WHEN (NEW.state = 'pending') EXECUTE FUNCTION castlog_delivery_due()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER deliveries_due_notify ON deliveries`.execute(db);
  await sql`DROP FUNCTION castlog_delivery_due()`.execute(db);
  for (const t of ['encode_requests', 'alert_email_pacing']) await db.schema.dropTable(t).execute();
  for (const i of ['deliveries_by_user', 'deliveries_by_job', 'deliveries_sending']) await db.schema.dropIndex(i).execute();
  await sql`ALTER TABLE deliveries DROP COLUMN claimed_by, DROP COLUMN claimed_at_ms, DROP COLUMN retry_until_ms,
    DROP COLUMN series_attempts`.execute(db);
}
