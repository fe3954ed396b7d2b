import { boot, retry } from '../boot.ts';
import { buildApi } from './server.ts';

const app = await boot('api');
// The API must answer (503s, /readyz) even while Kafka is down, so topics are made in the background.
void retry(() => app.log.ensureTopics(), app.logger, 'ensure topics', Infinity).catch(() => undefined);
const api = await buildApi(app);
await api.listen({ port: app.config.apiPort, host: '0.0.0.0' });
app.onClose(() => api.close());
app.logger.info({ url: `http://localhost:${app.config.apiPort}/` }, 'api listening');
