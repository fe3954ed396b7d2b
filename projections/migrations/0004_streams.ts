import { sql, type Kysely } from 'kysely';

// The stream-limit read model. Frozen: the tables as they were made when this ran.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE applied_versions (projection text NOT NULL, stream text NOT NULL, version integer NOT NULL,
    CONSTRAINT applied_versions_pk PRIMARY KEY (projection, stream))`.execute(db);
  await sql`CREATE TABLE viewers (user_id text PRIMARY KEY, stream_limit integer, issued_at_ms bigint NOT NULL)`.execute(db);
  await sql`CREATE TABLE viewer_leases (
    user_id text NOT NULL, stream_id text NOT NULL, activated_at_ms bigint NOT NULL, expires_at_ms bigint NOT NULL,
    CONSTRAINT viewer_leases_pk PRIMARY KEY (user_id, stream_id))`.execute(db);
  await sql`CREATE INDEX viewer_leases_by_expiry ON viewer_leases (expires_at_ms)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['viewer_leases', 'viewers', 'applied_versions']) await db.schema.dropTable(t).execute();
}
