// The relay publishes at least once: a projection applies each event-store (stream, version) only
// the first time, remembered in its own applied_versions table.
import type { Kysely, Transaction } from 'kysely';
import type { Database } from './database.ts';
import type { ProjectedRecord } from './projection.ts';

/** The last version of each event-store stream applied: the relay publishes at least once. */
export async function createAppliedVersions(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('applied_versions')
    .addColumn('projection', 'text', (c) => c.notNull())
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('applied_versions_pk', ['projection', 'stream'])
    .execute();
}

/** True the first time a (stream, version) is seen by this projection; false for a repeat. */
export async function firstTime(trx: Transaction<Database>, projection: string, r: ProjectedRecord): Promise<boolean> {
  const { stream, streamVersion } = r.meta;
  if (stream === undefined || streamVersion === undefined) return true;
  const row = await trx
    .insertInto('applied_versions')
    .values({ projection, stream, version: streamVersion })
    .onConflict((oc) =>
      oc.columns(['projection', 'stream']).doUpdateSet({ version: streamVersion }).where('applied_versions.version', '<', streamVersion),
    )
    .returning('version')
    .executeTakeFirst();
  return row !== undefined;
}
