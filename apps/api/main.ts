import { boot, retry } from '../boot.ts';
import { buildApi } from './server.ts';

const app = await boot('api');
await retry(() => app.log.ensureTopics(), app.logger, 'ensure topics');
const api = await buildApi(app);
await api.listen({ port: app.config.apiPort, host: '0.0.0.0' });
app.onClose(() => api.close());
app.logger.info({ url: `http://localhost:${app.config.apiPort}/` }, 'api listening');
