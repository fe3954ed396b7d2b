// The projector process: runs every projection into Postgres, including versions being rebuilt.
import { boot, retry } from '../boot.ts';
import { serveMetrics } from '../../infra/metrics.ts';
import { pingDb } from '../../infra/db.ts';
import { PROJECTIONS } from '../../projections/catalog.ts';
import { superviseProjections } from './supervisor.ts';

const app = await boot('projector', { background: true });
const unknown = app.config.projections.filter((name) => !(name in PROJECTIONS));
if (unknown.length) {
  app.logger.error(
    { unknown, known: Object.keys(PROJECTIONS) },
    'PROJECTIONS names projections that do not exist; the projector does not run',
  );
  process.exit(1);
}
await retry(() => app.log.ensureTopics(), app.logger, 'ensure topics', Infinity);
const supervisor = superviseProjections(app, app.config.projections.length ? app.config.projections : Object.keys(PROJECTIONS));
app.onClose(() => supervisor.stop());
const port = app.config.projectorPort;
const server = serveMetrics(app.metrics, port, async () => (await pingDb(app.db)) && (await app.log.ping()));
app.onClose(() => new Promise((r) => server.close(r)));
app.logger.info({ port }, 'projector running');
