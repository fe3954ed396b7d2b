import { sql, type Kysely } from 'kysely';
import { createCaptionIndexes, createCaptionTables } from '../captions/tables.ts';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('projection_positions')
    .addColumn('projection', 'text', (c) => c.notNull())
    .addColumn('topic', 'text', (c) => c.notNull())
    .addColumn('partition', 'integer', (c) => c.notNull())
    .addColumn('next_offset', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('projection_positions_pk', ['projection', 'topic', 'partition'])
    .execute();
  await createCaptionTables(db);
  await createCaptionIndexes(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['channels', 'caption_fragments', 'projection_positions']) await db.schema.dropTable(t).execute();
}
