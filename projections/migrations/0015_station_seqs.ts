import { sql, type Kysely } from 'kysely';
import { createStationSeqs } from '../captions/tables.ts';

// Every reader now treats a fragment whose seq is not above its station's last as a repeat (the
// fanout always did); existing caption versions get the table, filled from their rows.
export async function up(db: Kysely<unknown>): Promise<void> {
  const { rows } = await sql<{ nspname: string }>`SELECT nspname FROM pg_namespace WHERE nspname ~ '^captions_v[0-9]+$'`.execute(db);
  for (const { nspname } of rows) {
    await sql`SET LOCAL search_path TO ${sql.id(nspname)}, public`.execute(db);
    await createStationSeqs(db);
    await sql`INSERT INTO ${sql.id(nspname, 'station_seqs')} (channel, station, last_seq)
              SELECT channel, station, max(seq) FROM ${sql.id(nspname, 'caption_fragments')} GROUP BY channel, station`.execute(db);
    await sql`SET LOCAL search_path TO public`.execute(db);
  }
}

export async function down(): Promise<void> {
  throw new Error('0015_station_seqs cannot be undone automatically');
}
