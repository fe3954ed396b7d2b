import { type Kysely } from 'kysely';
import { createStreamTables } from '../streams/tables.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  await createStreamTables(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['viewer_leases', 'viewers', 'applied_versions']) await db.schema.dropTable(t).execute();
}
