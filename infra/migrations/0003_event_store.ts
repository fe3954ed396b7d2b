import { sql, type Kysely } from 'kysely';

// The event store of decided events (the write side), its inline snapshots, and the relay's checkpoint.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE events (
    position bigserial PRIMARY KEY,
    -- The writing transaction: the relay reads below the oldest running one, so a transaction
    -- that commits late is never skipped.
    tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    stream text NOT NULL,
    version integer NOT NULL,
    type text NOT NULL,
    key text NOT NULL,
    data bytea NOT NULL,
    meta jsonb NOT NULL,
    CONSTRAINT events_stream_version UNIQUE (stream, version)
  )`.execute(db);
  await sql`CREATE INDEX events_relay_order ON events (tx_id, position)`.execute(db);
  await sql`CREATE TABLE snapshots (stream text PRIMARY KEY, version integer NOT NULL, state jsonb NOT NULL)`.execute(db);
  await sql`CREATE TABLE relay_checkpoints (name text PRIMARY KEY, tx_id xid8 NOT NULL, position bigint NOT NULL)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['relay_checkpoints', 'snapshots', 'events']) await db.schema.dropTable(t).execute();
}
