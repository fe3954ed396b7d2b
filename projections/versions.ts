// Versions of a projection. Version N of projection P lives in schema P_vN; public views show the
// serving one. A rebuild creates P_vN+1, the projector fills it from offset 0 while P_vN keeps
// serving, and once it has caught up one transaction points the views at it.
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Database, ProjectionPositionsTable } from './database.ts';
import type { Projection } from './projection.ts';
import { LOCKS, lockKey } from '../infra/locks.ts';
import { writesNoEvents } from '../infra/eventstore/postgres.ts';

export const schemaOf = (name: string, version: number) => `${name}_v${version}`;
/** Where every projection reader's consumer group name begins. */
export const PROJECTION_GROUPS = 'castlog-projection-';
/**
 * The Kafka consumer group of a projector's reader of some versions (`keys`: their schemas), and of
 * `topics` when it reads only those ("analytics_v1+captions_v1@captions"): its members are the
 * projector processes running them, which is how the admin status knows who runs what.
 */
export const projectionGroup = (keys: string[], topics?: string[]) =>
  PROJECTION_GROUPS + [...keys].sort().join('+') + (topics ? `@${[...topics].sort().join(',')}` : '');
/** The versions a reader's group serves, read back from its name (see projectionGroup). */
export const versionsOfGroup = (group: string): string[] => group.slice(PROJECTION_GROUPS.length).split('@')[0]!.split('+');

export interface VersionRow {
  name: string;
  current: number;
  building: number | null;
}

export async function versions(db: Kysely<Database>): Promise<VersionRow[]> {
  const { rows } = await sql<VersionRow>`SELECT name, current, building FROM projection_versions ORDER BY name`.execute(db);
  return rows;
}

/** The positions a version has stored: per topic and partition, the offset of the next record to apply. */
export function positionsOf(db: Kysely<Database>, name: string, version: number): Promise<Selectable<ProjectionPositionsTable>[]> {
  return db.selectFrom('projection_positions').selectAll().where('projection', '=', schemaOf(name, version)).execute();
}

/**
 * How far the serving version of a projection has applied a partition: the offset of the next
 * record to apply, 0 when none. Readers of the public views ask this, in the transaction they read
 * the views in, so the version and its position come from one snapshot.
 */
export async function servingNextOffset(db: Kysely<Database>, name: string, topic: string, partition: number): Promise<number> {
  const { rows } = await sql<{ current: number }>`SELECT current FROM projection_versions WHERE name = ${name}`.execute(db);
  if (!rows[0]) return 0;
  const pos = await db
    .selectFrom('projection_positions')
    .select('next_offset')
    .where('projection', '=', schemaOf(name, rows[0].current))
    .where('topic', '=', topic)
    .where('partition', '=', partition)
    .executeTakeFirst();
  return pos?.next_offset ?? 0;
}

export class RebuildError extends Error {}

/**
 * A transaction of this module: versions, their tables, indexes and swaps, never events. Saying so
 * first lets the relay publish decisions' events while one runs (an index build over millions of
 * rows takes seconds; the swap holds the serving version for up to HOLD_MS).
 */
function versionsTransaction<T>(db: Kysely<Database>, work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await writesNoEvents(trx);
    return work(trx);
  });
}

/** Creates the next version's schema and tables and marks it as building. */
export async function startRebuild(db: Kysely<Database>, projection: Projection): Promise<number> {
  return versionsTransaction(db, async (trx) => {
    const { rows } =
      await sql<VersionRow>`SELECT name, current, building FROM projection_versions WHERE name = ${projection.name} FOR UPDATE`.execute(
        trx,
      );
    const row = rows[0];
    if (!row) throw new RebuildError(`unknown projection ${projection.name}`);
    if (row.building !== null) throw new RebuildError(`${projection.name} v${row.building} is already being built`);
    const next = row.current + 1;
    const schema = schemaOf(projection.name, next);
    // A leftover from an abandoned build of the same number is replaced.
    await sql`DROP SCHEMA IF EXISTS ${sql.id(schema)} CASCADE`.execute(trx);
    await sql`CREATE SCHEMA ${sql.id(schema)}`.execute(trx);
    await sql`SET LOCAL search_path TO ${sql.id(schema)}, public`.execute(trx);
    await projection.createTables(trx);
    await sql`UPDATE projection_versions SET building = ${next}, building_started_at = now(), building_indexed_at = NULL
      WHERE name = ${projection.name}`.execute(trx);
    return next;
  });
}

/**
 * How many records `newKey` has yet to apply to reach `oldKey`'s positions, summed over partitions
 * (a partition it has not started counts from 0). With `lock`, the old positions are locked first.
 */
async function recordsBehind(db: Kysely<Database>, oldKey: string, newKey: string, lock = sql``): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    SELECT coalesce(sum(greatest(old.next_offset - coalesce(neu.next_offset, 0), 0)), 0)::int AS n
    FROM (SELECT topic, partition, next_offset FROM projection_positions WHERE projection = ${oldKey} ${lock}) old
    LEFT JOIN projection_positions neu ON neu.projection = ${newKey} AND neu.topic = old.topic AND neu.partition = old.partition`.execute(
    db,
  );
  return rows[0]!.n;
}

/**
 * A version this close to the serving one has caught up for the purpose of a swap: the serving
 * version is held still (its positions locked) while the new one applies the rest. Under steady
 * ingest the two are rarely level at the instant one looks, so waiting for that could take forever.
 */
const NEAR_RECORDS = 2_000;
/** The longest the serving version is held still while the new one closes the gap. */
const HOLD_MS = 3_000;
/** Postgres memory for a rebuilt version's index builds, all of them together. */
const INDEX_BUILD_MEMORY_MB = 256;

/**
 * Once `version` has (nearly) caught up, makes the readers' indexes it was built without: one bulk
 * build each. Its own projector waits on the table lock meanwhile; the serving version is untouched.
 */
async function indexWhenCaughtUp(
  db: Kysely<Database>,
  projection: Projection,
  version: number,
  oldKey: string,
  newKey: string,
): Promise<boolean> {
  if ((await recordsBehind(db, oldKey, newKey)) > NEAR_RECORDS) return false;
  // Each in a transaction of its own, all at once: builds of one table share its SHARE lock, and a
  // GIN build uses one core (1M fragments: 9.6 s one after another, 5.2-6.5 s side by side). A
  // batch of this version asking for the table between two builds' locks only makes the later ones
  // wait for it (Postgres queues them behind it); nothing waits in a circle. All are waited for, so
  // none still runs when the next attempt starts. They share the memory one build had (as fast:
  // 4.9-6.3 s with 51 MB each, 5.2-5.7 s with 256 MB each).
  const builds = projection.indexes ?? [];
  const memory = sql.lit(`${Math.max(16, Math.floor(INDEX_BUILD_MEMORY_MB / (builds.length || 1)))}MB`);
  const built = await Promise.allSettled(
    builds.map((build) =>
      versionsTransaction(db, async (trx) => {
        await sql`SET LOCAL search_path TO ${sql.id(newKey)}, public; SET LOCAL maintenance_work_mem TO ${memory}`.execute(trx);
        await build(trx);
      }),
    ),
  );
  const failed = built.find((b) => b.status === 'rejected');
  if (failed) throw failed.reason;
  await sql`UPDATE projection_versions SET building_indexed_at = now() WHERE name = ${projection.name} AND building = ${version}`.execute(
    db,
  );
  return true;
}

/**
 * Swaps the views to `version` once it has caught up with the serving version and has its readers'
 * indexes. The serving version's positions are locked (it cannot move ahead, its projector waits)
 * while the new one closes the last gap, for at most HOLD_MS; then one transaction points the views
 * at the new version. Returns true once swapped.
 */
export async function trySwap(db: Kysely<Database>, projection: Projection, version: number): Promise<boolean> {
  const { rows: now } = await sql<VersionRow & { indexed: boolean }>`
    SELECT name, current, building, building_indexed_at IS NOT NULL AS indexed
    FROM projection_versions WHERE name = ${projection.name}`.execute(db);
  if (now[0]?.building !== version) return false;
  const oldKey = schemaOf(projection.name, now[0].current);
  const newKey = schemaOf(projection.name, version);
  if (!now[0].indexed && !(await indexWhenCaughtUp(db, projection, version, oldKey, newKey))) return false;
  if ((await recordsBehind(db, oldKey, newKey)) > NEAR_RECORDS) return false;
  return versionsTransaction(db, async (trx) => {
    const { rows } =
      await sql<VersionRow>`SELECT name, current, building FROM projection_versions WHERE name = ${projection.name} FOR UPDATE`.execute(
        trx,
      );
    const row = rows[0];
    if (!row || row.building !== version || schemaOf(projection.name, row.current) !== oldKey) return false;
    const until = Date.now() + HOLD_MS;
    let behind = await recordsBehind(trx, oldKey, newKey, sql`FOR UPDATE`);
    while (behind > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 20));
      behind = await recordsBehind(trx, oldKey, newKey);
    }
    if (behind > 0) return false;
    for (const view of projection.views) {
      await sql`DROP VIEW IF EXISTS ${sql.id(view)}`.execute(trx);
      await sql`CREATE VIEW ${sql.id(view)} AS SELECT * FROM ${sql.id(newKey, view)}`.execute(trx);
    }
    await sql`UPDATE projection_versions SET current = ${version}, building = NULL, swapped_at = now()
      WHERE name = ${projection.name}`.execute(trx);
    return true;
  });
}

/**
 * Makes sure a projection has a version: creates <name>_v1 with its tables and public views the
 * first time. Tables a migration already made in public are moved into it rather than recreated.
 */
export async function ensureRegistered(db: Kysely<Database>, projection: Projection): Promise<void> {
  await versionsTransaction(db, async (trx) => {
    await sql`SELECT pg_advisory_xact_lock(${lockKey(LOCKS.projectionVersions)})`.execute(trx);
    const { rows } = await sql`SELECT 1 FROM projection_versions WHERE name = ${projection.name}`.execute(trx);
    if (rows.length) return;
    const schema = schemaOf(projection.name, 1);
    await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(schema)}`.execute(trx);
    const { rows: existing } = await sql<{ table_name: string }>`
      SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`.execute(trx);
    const inPublic = new Set(existing.map((r) => r.table_name));
    const fromMigrations = projection.views.length > 0 && projection.views.every((v) => inPublic.has(v));
    if (fromMigrations) for (const v of projection.views) await sql`ALTER TABLE ${sql.id(v)} SET SCHEMA ${sql.id(schema)}`.execute(trx);
    await sql`SET LOCAL search_path TO ${sql.id(schema)}, public`.execute(trx);
    if (!fromMigrations) await projection.createTables(trx);
    // The first version serves at once: its readers' indexes come with it.
    for (const build of projection.indexes ?? []) await build(trx);
    await sql`SET LOCAL search_path TO public`.execute(trx);
    for (const v of projection.views) await sql`CREATE VIEW ${sql.id(v)} AS SELECT * FROM ${sql.id(schema, v)}`.execute(trx);
    await sql`UPDATE projection_positions SET projection = ${schema} WHERE projection = ${projection.name}`.execute(trx);
    await sql`INSERT INTO projection_versions (name, current) VALUES (${projection.name}, 1)`.execute(trx);
  });
}
