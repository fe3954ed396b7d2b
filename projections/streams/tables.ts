// The stream-limit read model's tables. Each projection version creates them in its own schema.
import type { Kysely } from 'kysely';
import { createAppliedVersions } from '../applied-versions.ts';

export const STREAM_TABLES = ['viewers', 'viewer_leases'];

export async function createStreamTables(db: Kysely<any>): Promise<void> {
  await createAppliedVersions(db);
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
