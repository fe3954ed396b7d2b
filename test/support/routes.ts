// The api's route table, read from the real app (built, never listening), so tests that must
// cover every route cover a new one by default.
import { buildApi } from '../../apps/api/server.ts';
import type { RouteInfo } from '../../apps/api/access.ts';
import { loadConfig } from '../../infra/config.ts';
import { createDb } from '../../infra/db.ts';
import { PostgresEventStore } from '../../infra/eventstore/postgres.ts';
import { EventLog } from '../../infra/kafka/index.ts';
import { createLogger } from '../../infra/logger.ts';
import { createRegistry } from '../../infra/metrics.ts';
import { StationKeys } from '../../infra/stations.ts';
import { readPool } from '../../apps/api/reads.ts';
import type { Database } from '../../projections/database.ts';

export async function routeTable(env: NodeJS.ProcessEnv): Promise<RouteInfo[]> {
  const config = loadConfig(env);
  const logger = createLogger('routes', 'silent');
  const db = createDb<Database>(config.databaseUrl, 1);
  const log = new EventLog(config.kafkaBrokers, config.topicPrefix, logger);
  const reads = readPool(config);
  const app = await buildApi({
    config,
    db,
    log,
    logger,
    reads,
    metrics: createRegistry('routes'),
    store: new PostgresEventStore(db, log.codec),
    stations: new StationKeys(db, undefined),
  });
  await app.ready();
  const table = [...app.routeTable];
  await app.close();
  await Promise.all([reads.close(), db.destroy(), log.close()]);
  return table;
}
