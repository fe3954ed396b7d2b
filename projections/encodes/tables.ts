// The encodes read model's tables: jobs, and who may see each (the owner and everyone
// deduplicated onto it). Each projection version creates them in its own schema.
import type { Kysely } from 'kysely';
import { createAppliedVersions } from '../applied-versions.ts';

export const ENCODE_TABLES = ['encode_jobs', 'encode_job_users'];

export async function createEncodeTables(db: Kysely<any>): Promise<void> {
  await createAppliedVersions(db);
  await db.schema
    .createTable('encode_jobs')
    .addColumn('job_id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('upload_id', 'text', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('filename', 'text', (c) => c.notNull())
    .addColumn('raw', 'boolean', (c) => c.notNull())
    .addColumn('options', 'jsonb', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('step', 'text')
    .addColumn('percent', 'double precision', (c) => c.notNull())
    .addColumn('steps_done', 'jsonb', (c) => c.notNull())
    .addColumn('worker', 'text')
    .addColumn('output_sha256', 'text')
    .addColumn('output_size', 'bigint')
    .addColumn('error', 'text')
    .addColumn('stderr_tail', 'text')
    .addColumn('requested_at_ms', 'bigint', (c) => c.notNull())
    .addColumn('updated_at_ms', 'bigint', (c) => c.notNull())
    .execute();
  // Workers look for jobs nobody has written to lately.
  await db.schema.createIndex('encode_jobs_by_status').on('encode_jobs').columns(['status', 'updated_at_ms']).execute();
  await db.schema
    .createTable('encode_job_users')
    .addColumn('job_id', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('upload_id', 'text', (c) => c.notNull())
    .addColumn('at_ms', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('encode_job_users_pk', ['job_id', 'user_id'])
    .execute();
  await db.schema.createIndex('encode_job_users_by_user').on('encode_job_users').columns(['user_id', 'at_ms']).execute();
}
