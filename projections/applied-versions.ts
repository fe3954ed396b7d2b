// The relay publishes at least once: a projection applies each event-store (stream, version) only
// the first time, remembered in its own applied_versions table.
import { sql, type Kysely, type Transaction } from 'kysely';
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

/**
 * The records of a batch seen for the first time, in one round trip: the versions applied before
 * the batch are read and the batch's latest written in one statement, and the rest is decided here
 * as firstTime would, record by record (a repeat inside the batch is dropped too). A stream's
 * events are in one partition, so no other transaction moves these streams' versions meanwhile.
 */
export async function firstTimes<R extends ProjectedRecord>(trx: Transaction<Database>, projection: string, records: R[]): Promise<R[]> {
  const latest = new Map<string, number>();
  for (const { meta } of records)
    if (meta.stream !== undefined && meta.streamVersion !== undefined)
      latest.set(meta.stream, Math.max(meta.streamVersion, latest.get(meta.stream) ?? 0));
  if (!latest.size) return records;
  const { rows } = await sql<{ stream: string; version: number }>`
    WITH before AS (
      SELECT stream, version FROM applied_versions WHERE projection = ${projection} AND stream = ANY(${[...latest.keys()]}::text[])
    ), upsert AS (
      INSERT INTO applied_versions (projection, stream, version)
      SELECT ${projection}::text, s, v FROM unnest(${[...latest.keys()]}::text[], ${[...latest.values()]}::int[]) AS b(s, v)
      ON CONFLICT (projection, stream) DO UPDATE SET version = greatest(applied_versions.version, excluded.version)
    )
    SELECT stream, version FROM before`.execute(trx);
  const applied = new Map(rows.map((r) => [r.stream, r.version]));
  return records.filter(({ meta: { stream, streamVersion } }) => {
    if (stream === undefined || streamVersion === undefined) return true;
    if (streamVersion <= (applied.get(stream) ?? 0)) return false;
    applied.set(stream, streamVersion);
    return true;
  });
}
