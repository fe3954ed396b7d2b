// The projector process: runs every projection into Postgres.
import { boot, retry } from '../boot.ts';
import { serveMetrics } from '../../infra/metrics.ts';
import { pingDb } from '../../infra/db.ts';
import { captionsProjection } from '../../projections/captions/projection.ts';
import { streamsProjection } from '../../projections/streams/projection.ts';
import { runProjection } from './runner.ts';

const app = await boot('projector');
await retry(() => app.log.ensureTopics(), app.logger, 'ensure topics');
for (const projection of [captionsProjection, streamsProjection]) {
  const running = await retry(() => runProjection(app, projection), app.logger, `start projection ${projection.name}`);
  app.onClose(() => running.stop());
}
const port = Number(process.env.PROJECTOR_PORT ?? 8082);
const server = serveMetrics(app.metrics, port, async () => (await pingDb(app.db)) && (await app.log.ping()));
app.onClose(() => new Promise((r) => server.close(r)));
app.logger.info({ port }, 'projector running');
