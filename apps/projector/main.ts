// The projector process: runs every projection into Postgres, including versions being rebuilt.
import { boot, retry } from '../boot.ts';
import { serveMetrics } from '../../infra/metrics.ts';
import { pingDb } from '../../infra/db.ts';
import { superviseProjections } from './supervisor.ts';

const app = await boot('projector');
await retry(() => app.log.ensureTopics(), app.logger, 'ensure topics', Infinity);
const supervisor = superviseProjections(app);
app.onClose(() => supervisor.stop());
const port = app.config.projectorPort;
const server = serveMetrics(app.metrics, port, async () => (await pingDb(app.db)) && (await app.log.ping()));
app.onClose(() => new Promise((r) => server.close(r)));
app.logger.info({ port }, 'projector running');
