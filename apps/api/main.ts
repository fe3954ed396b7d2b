import { boot, retry } from '../boot.ts';
import { createDb } from '../../infra/db.ts';
import { PostgresEventStore } from '../../infra/eventstore/postgres.ts';
import { Gate } from '../../infra/gate.ts';
import { StationKeys } from '../../infra/stations.ts';
import { PROJECTIONS } from '../../projections/catalog.ts';
import { ensureRegistered } from '../../projections/versions.ts';
import { startLeaseSweeper } from './lease-sweeper.ts';
import { readPool } from './reads.ts';
import { handlerOf } from './streams.ts';
import { buildApi } from './server.ts';
import type { Database } from '../../projections/database.ts';

/** Decisions at once per api process, the size of their pool: two short round trips each, so a
 * few connections keep a 2-core Postgres busy; more would only queue inside Postgres. */
const DECISION_CONNECTIONS = 8;
const LISTEN_BACKLOG = 4096; // the kernel caps it at net.core.somaxconn

const app = await boot('api');
// The API must answer (503s, /readyz) even while Kafka is down, so topics are made in the background.
void retry(() => app.log.ensureTopics(), app.logger, 'ensure topics', Infinity).catch(() => undefined);
// Ingest asks whether Kafka answers before it starts: connect that probe now, not on a station's first request.
void app.log.ping();
// Decisions get their own pool, behind a gate of the same size: a burst waits its turn in the
// gate (and past its queue is told "busy"), so the pool's connect timeout only ever measures
// Postgres itself — a stopped or cut-off server refuses at once (a fast 503 "unavailable").
const decisionsDb = createDb<Database>(app.config.databaseUrl, DECISION_CONNECTIONS, { connectTimeoutMs: 3000, queryTimeoutMs: 3000 });
app.onClose(() => decisionsDb.destroy());
const gate = new Gate({ name: 'decisions', concurrency: DECISION_CONNECTIONS, maxQueued: 5000, maxWaitMs: 5000 });
const store = new PostgresEventStore(decisionsDb, app.log.codec, gate);
const reads = readPool(app.config);
app.onClose(() => reads.close());
const stations = new StationKeys(app.db, app.config.databaseUrl, app.logger);
app.onClose(() => stations.close());
// The routes read every projection's views: they exist before any projector first runs (and a
// projection no projector has been given yet is listed by the admin status, run by nobody).
for (const p of Object.values(PROJECTIONS)) await retry(() => ensureRegistered(app.db, p), app.logger, `register projection ${p.name}`);
const api = await buildApi({ ...app, store, reads, stations });
// A burst of connects (a client's pool opening at once) waits in the kernel while the event loop is
// busy, instead of overflowing Node's default queue of 511 into dropped SYNs and connect timeouts.
await api.listen({ port: app.config.apiPort, host: '0.0.0.0', backlog: LISTEN_BACKLOG });
app.onClose(() => api.close());
const stopSweeper = startLeaseSweeper(app.db, handlerOf(store), app.logger);
app.onClose(stopSweeper);
app.logger.info({ url: `http://localhost:${app.config.apiPort}/` }, 'api listening');
