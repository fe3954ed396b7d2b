// The relay publishes at least once: a projection applies each (stream, version) only the first time.
import type { Transaction } from 'kysely';
import type { Database } from '../database.ts';
import type { ProjectedRecord } from '../projection.ts';

export async function firstTime(trx: Transaction<Database>, projection: string, r: ProjectedRecord): Promise<boolean> {
  const { stream, streamVersion } = r.meta;
  if (stream === undefined || streamVersion === undefined) return true;
  const row = await trx
    .insertInto('applied_versions')
    .values({ projection, stream, version: streamVersion })
    .onConflict((oc) => oc.columns(['projection', 'stream']).doUpdateSet({ version: streamVersion }).where('applied_versions.version', '<', streamVersion))
    .returning('version')
    .executeTakeFirst();
  return row !== undefined;
}
