import { sql, type Kysely } from 'kysely';

// Projections become versioned: version N of projection P lives in schema P_vN, readers see public
// views of the serving version, and a rebuild builds P_vN+1 beside it before one swap.
const PROJECTIONS: Record<string, { views: string[]; internal: string[] }> = {
  captions: { views: ['caption_fragments', 'channels'], internal: [] },
  streams: { views: ['viewers', 'viewer_leases'], internal: ['applied_versions'] },
};

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE TABLE projection_versions (
    name text PRIMARY KEY,
    current integer NOT NULL,
    building integer,
    building_started_at timestamptz,
    swapped_at timestamptz
  )`.execute(db);
  for (const [name, { views, internal }] of Object.entries(PROJECTIONS)) {
    const schema = `${name}_v1`;
    await sql`CREATE SCHEMA ${sql.id(schema)}`.execute(db);
    for (const t of [...views, ...internal]) await sql`ALTER TABLE ${sql.id(t)} SET SCHEMA ${sql.id(schema)}`.execute(db);
    for (const t of views) await sql`CREATE VIEW ${sql.id(t)} AS SELECT * FROM ${sql.id(schema, t)}`.execute(db);
    await sql`INSERT INTO projection_versions (name, current) VALUES (${name}, 1)`.execute(db);
    await sql`UPDATE projection_positions SET projection = ${schema} WHERE projection = ${name}`.execute(db);
  }
}

export async function down(): Promise<void> {
  throw new Error('0010_projection_versions cannot be undone automatically');
}
