// The outputs the read model knows of for one file encoded with one set of options: completed jobs,
// whoever's. The bytes are content-addressed, so an output is the same whichever job made it; a
// job of anyone may reuse one. Candidates only: the read model says what was made, not what is still
// stored, so the caller checks the blob store before using one.
import { sql, type Kysely } from 'kysely';
import type { EncodeOptions } from '../../schemas/types.generated.ts';
import type { Database } from '../database.ts';

export interface OutputCandidate {
  sha256: string;
  size: number;
}

/** Distinct outputs of (sha256, options), most recently completed first. */
export async function outputsOf(db: Kysely<Database>, sha256: string, options: EncodeOptions, limit = 4): Promise<OutputCandidate[]> {
  const rows = await db
    .selectFrom('encode_jobs')
    .select(['output_sha256', 'output_size'])
    .where('sha256', '=', sha256)
    .where('status', '=', 'completed')
    // jsonb equality: the same normalized options, whatever order their keys were written in.
    .where('options', '=', sql<unknown>`${JSON.stringify(options)}::jsonb`)
    .where('output_sha256', 'is not', null)
    .where('output_size', 'is not', null)
    .groupBy(['output_sha256', 'output_size'])
    .orderBy(sql`max(updated_at_ms)`, 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ sha256: r.output_sha256!, size: r.output_size! }));
}

/** The index outputsOf reads by. */
export async function createOutputIndex(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('encode_jobs_by_input').ifNotExists().on('encode_jobs').columns(['sha256', 'status']).execute();
}
