import { sql, type Kysely } from 'kysely';

// Every reader now treats a fragment whose seq is not above its station's last as a repeat (the
// fanout always did); existing caption versions get the table, filled from their rows.
export async function up(db: Kysely<unknown>): Promise<void> {
  const { rows } = await sql<{ nspname: string }>`SELECT nspname FROM pg_namespace WHERE nspname ~ '^captions_v[0-9]+$'`.execute(db);
  for (const { nspname } of rows) {
    await sql`CREATE TABLE ${sql.id(nspname, 'station_seqs')} (channel text NOT NULL, station text NOT NULL, last_seq bigint NOT NULL,
      CONSTRAINT station_seqs_pk PRIMARY KEY (channel, station))`.execute(db);
    await sql`INSERT INTO ${sql.id(nspname, 'station_seqs')} (channel, station, last_seq)
              SELECT channel, station, max(seq) FROM ${sql.id(nspname, 'caption_fragments')} GROUP BY channel, station`.execute(db);
  }
}

export async function down(): Promise<void> {
  throw new Error('0015_station_seqs cannot be undone automatically');
}
