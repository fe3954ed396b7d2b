// How the apps read the encodes read model (encode_jobs), through the public view. The outputs a
// new encode may reuse are in outputs.ts, beside the index they read by.
import type { Kysely, Selectable } from 'kysely';
import type { Database, EncodeJobsTable } from '../database.ts';

/** A user's own job as the read model has it; undefined when it has no row yet, or the job is someone else's. */
export function ownJobRow(db: Kysely<Database>, jobId: string, userId: string): Promise<Selectable<EncodeJobsTable> | undefined> {
  return db.selectFrom('encode_jobs').selectAll().where('job_id', '=', jobId).where('user_id', '=', userId).executeTakeFirst();
}
