// The encodes read model's table: jobs, each seen by its owner only. Each projection version creates
// it in its own schema. (Versions before jobs were per user also had encode_job_users, the users
// deduplicated onto another's job; nothing reads it, and it goes with those versions.)
import type { Kysely } from 'kysely';
import { createAppliedVersions } from '../applied-versions.ts';

export const ENCODE_TABLES = ['encode_jobs'];

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
}
