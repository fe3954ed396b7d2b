// Brings the database to the newest schema. Migrations are numbered files with up and down.
import { Migrator, type Migration } from 'kysely';
import type { Db } from '../infra/db.ts';
import * as m0001 from './migrations/0001_stations.ts';
import * as m0002 from './migrations/0002_captions.ts';
import * as m0003 from './migrations/0003_event_store.ts';
import * as m0004 from './migrations/0004_streams.ts';

const MIGRATIONS: Record<string, Migration> = {
  '0001_stations': m0001,
  '0002_captions': m0002,
  '0003_event_store': m0003,
  '0004_streams': m0004,
};

export async function migrate(db: Db): Promise<void> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => MIGRATIONS } });
  const { error } = await migrator.migrateToLatest();
  if (error) throw error;
}
