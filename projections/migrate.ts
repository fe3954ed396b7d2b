// Brings the database to the newest schema. Migrations are numbered files with up and down: the
// write side's (stations, the event store) in infra/migrations, the read models' in projections/migrations.
import { Migrator, type Migration } from 'kysely';
import type { Db } from './database.ts';
import * as m0001 from '../infra/migrations/0001_stations.ts';
import * as m0002 from './migrations/0002_captions.ts';
import * as m0003 from '../infra/migrations/0003_event_store.ts';
import * as m0020 from '../infra/migrations/0020_alert_outbox.ts';
import * as m0021 from '../infra/migrations/0021_delivery_state.ts';
import * as m0023 from './migrations/0023_search_repeats.ts';
import * as m0024 from '../infra/migrations/0024_writes_no_events.ts';
import * as m0004 from './migrations/0004_streams.ts';
import * as m0010 from './migrations/0010_projection_versions.ts';
import * as m0011 from './migrations/0011_search.ts';
import * as m0015 from './migrations/0015_station_seqs.ts';
import * as m0016 from './migrations/0016_building_indexed.ts';

const MIGRATIONS: Record<string, Migration> = {
  '0001_stations': m0001,
  '0002_captions': m0002,
  '0003_event_store': m0003,
  '0004_streams': m0004,
  '0010_projection_versions': m0010,
  '0011_search': m0011,
  '0015_station_seqs': m0015,
  '0016_building_indexed': m0016,
  '0020_alert_outbox': m0020,
  '0021_delivery_state': m0021,
  '0023_search_repeats': m0023,
  '0024_writes_no_events': m0024,
};

export async function migrate(db: Db): Promise<void> {
  // Unordered: migrations written in parallel may land after a higher-numbered one has run.
  const migrator = new Migrator({ db, provider: { getMigrations: async () => MIGRATIONS }, allowUnorderedMigrations: true });
  const { error } = await migrator.migrateToLatest();
  if (error) throw error;
}
