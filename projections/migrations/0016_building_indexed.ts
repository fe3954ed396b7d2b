import { sql, type Kysely } from 'kysely';

// A version being rebuilt gets its readers' indexes only once it has caught up (Projection.indexes);
// this says when that was done, so the swap waits for it and status can tell "indexing" apart.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE projection_versions ADD COLUMN building_indexed_at timestamptz`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE projection_versions DROP COLUMN building_indexed_at`.execute(db);
}
