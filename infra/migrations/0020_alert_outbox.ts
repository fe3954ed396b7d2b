import { sql, type Kysely } from 'kysely';

// Keyword alerts' effects, kept by their cause so each happens once: every match of an alert (the
// matcher's outbox, published to Kafka as AlertMatched, and the history users page through), and
// every e-mail or webhook delivery with its attempts.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE alert_matches (
    alert_id text NOT NULL, partition integer NOT NULL, "offset" bigint NOT NULL,
    user_id text NOT NULL, channel text NOT NULL, position text NOT NULL, station text NOT NULL,
    start_ms bigint NOT NULL, text text NOT NULL, snippet text NOT NULL, matched_at_ms bigint NOT NULL,
    published boolean NOT NULL DEFAULT false,
    CONSTRAINT alert_matches_pk PRIMARY KEY (alert_id, partition, "offset"))`.execute(db);
  await sql`CREATE INDEX alert_matches_history ON alert_matches (alert_id, matched_at_ms, partition, "offset")`.execute(db);
  await sql`CREATE INDEX alert_matches_unpublished ON alert_matches (matched_at_ms) WHERE NOT published`.execute(db);
  await sql`CREATE TABLE deliveries (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('email', 'webhook')),
    cause text NOT NULL,
    user_id text NOT NULL, alert_id text, job_id text,
    target text NOT NULL, payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'interrupted')),
    attempts integer NOT NULL DEFAULT 0, next_attempt_at_ms bigint NOT NULL,
    created_at_ms bigint NOT NULL, sent_at_ms bigint, last_error text,
    CONSTRAINT deliveries_once UNIQUE (kind, cause))`.execute(db);
  await sql`CREATE INDEX deliveries_due ON deliveries (next_attempt_at_ms) WHERE state = 'pending'`.execute(db);
  await sql`CREATE INDEX deliveries_by_alert ON deliveries (alert_id, created_at_ms) WHERE alert_id IS NOT NULL`.execute(db);
  await sql`CREATE TABLE delivery_attempts (
    delivery_id bigint NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE, attempt integer NOT NULL,
    at_ms bigint NOT NULL, duration_ms integer NOT NULL, status integer, error text,
    CONSTRAINT delivery_attempts_pk PRIMARY KEY (delivery_id, attempt))`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['delivery_attempts', 'deliveries', 'alert_matches']) await db.schema.dropTable(t).execute();
}
