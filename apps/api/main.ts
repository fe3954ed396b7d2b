import { boot, retry } from '../boot.ts';
import { createDb } from '../../infra/db.ts';
import { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import { PostgresEventStore } from '../../infra/eventstore/postgres.ts';
import { startLeaseSweeper } from './lease-sweeper.ts';
import { buildApi } from './server.ts';
import { ensureRegistered } from '../../projections/versions.ts';
import { uploadsProjection } from '../../projections/uploads/projection.ts';
import { encodesProjection } from '../../projections/encodes/projection.ts';

const app = await boot('api');
// The API must answer (503s, /readyz) even while Kafka is down, so topics are made in the background.
void retry(() => app.log.ensureTopics(), app.logger, 'ensure topics', Infinity).catch(() => undefined);
// Decisions get their own pool. A stopped or cut-off Postgres refuses connections at once (a fast
// 503); the timeouts bound a server that hangs, and leave room for bursts waiting for a client.
const decisionsDb = createDb(app.config.databaseUrl, 20, { connectTimeoutMs: 3000, queryTimeoutMs: 1000 });
app.onClose(() => decisionsDb.destroy());
const store = new PostgresEventStore(decisionsDb, app.log.codec);
// The upload and encode routes read these views: they exist before the projector first runs.
for (const p of [uploadsProjection, encodesProjection]) await retry(() => ensureRegistered(app.db, p), app.logger, `register projection ${p.name}`);
const api = await buildApi({ ...app, store });
await api.listen({ port: app.config.apiPort, host: '0.0.0.0' });
app.onClose(() => api.close());
const stopSweeper = startLeaseSweeper(app.db, new CommandHandler(store), app.logger);
app.onClose(stopSweeper);
app.logger.info({ url: `http://localhost:${app.config.apiPort}/` }, 'api listening');
