// The uploads read model's tables. Each projection version creates them in its own schema.
import type { Kysely } from 'kysely';
import { createAppliedVersions } from '../applied-versions.ts';

export const UPLOAD_TABLES = ['uploads'];

export async function createUploadTables(db: Kysely<any>): Promise<void> {
  await createAppliedVersions(db);
  await db.schema
    .createTable('uploads')
    .addColumn('upload_id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('filename', 'text', (c) => c.notNull())
    .addColumn('filetype', 'text')
    .addColumn('raw', 'boolean', (c) => c.notNull())
    .addColumn('length', 'bigint', (c) => c.notNull())
    .addColumn('offset', 'bigint', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text')
    .addColumn('duration_seconds', 'double precision')
    .addColumn('reason', 'text')
    .addColumn('created_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('updated_at_ms', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('uploads_by_user').on('uploads').columns(['user_id', 'created_at_ms']).execute();
  // The expiry sweep looks for old unfinished uploads.
  await db.schema.createIndex('uploads_by_status').on('uploads').columns(['status', 'created_at_ms']).execute();
  await db.schema.createIndex('uploads_by_sha256').on('uploads').column('sha256').execute();
}
