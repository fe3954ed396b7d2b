import { type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  // The last version of each event-store stream a projection applied: the relay publishes at least
  // once, so a repeat is recognised by (stream, version).
  await db.schema
    .createTable('applied_versions')
    .addColumn('projection', 'text', (c) => c.notNull())
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('applied_versions_pk', ['projection', 'stream'])
    .execute();
  await db.schema
    .createTable('viewers')
    .addColumn('user_id', 'text', (c) => c.primaryKey())
    .addColumn('stream_limit', 'integer')
    .addColumn('issued_at_ms', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('viewer_leases')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('stream_id', 'text', (c) => c.notNull())
    .addColumn('activated_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('expires_at_ms', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('viewer_leases_pk', ['user_id', 'stream_id'])
    .execute();
  await db.schema.createIndex('viewer_leases_by_expiry').on('viewer_leases').column('expires_at_ms').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['viewer_leases', 'viewers', 'applied_versions']) await db.schema.dropTable(t).execute();
}
