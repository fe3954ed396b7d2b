// The HTTP API: wiring of its route plugins. No business logic here.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import { userTokensOf, type Config } from '../../infra/config.ts';
import type { Db } from '../../infra/db.ts';
import type { EventLog } from '../../infra/kafka.ts';
import type { Logger } from '../../infra/logger.ts';
import type { Registry } from '../../infra/metrics.ts';
import { StationKeys } from '../../infra/stations.ts';
import { registerErrors, HttpError } from './errors.ts';
import { healthRoutes } from './health.ts';
import { historyRoutes } from './history.ts';
import { searchRoutes } from './search.ts';
import { exportRoutes } from './export.ts';
import { ingestRoutes } from './ingest.ts';
import { streamRoutes } from './streams.ts';
import { projectionAdminRoutes } from './admin-projections.ts';
import { schemaRoutes } from './schemas.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import { BlobStore } from '../../infra/blobs/blob-store.ts';
import { uploadRoutes } from './uploads.ts';
import { encodeRoutes } from './encodes.ts';
import { analyticsRoutes } from './analytics.ts';
import { userOf, userTokenRoutes } from './caller.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface ApiDeps {
  config: Config;
  db: Db;
  log: EventLog;
  logger: Logger;
  metrics: Registry;
  store: EventStore;
}

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    requestTimeout: 0, // ingest requests may stay open for hours
    trustProxy: true, // castlog sits behind a trusted proxy (it also sets x-userid)
    // An unknown parameter is a mistake worth telling the caller about, not something to drop.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  }) as unknown as FastifyInstance;
  registerErrors(app);
  // JSON bodies must be valid UTF-8: a replacement character silently stored is worse than a 400.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(utf8.decode(body as Buffer)));
    } catch (e) {
      done(new HttpError(400, e instanceof SyntaxError ? `body: malformed JSON: ${e.message}` : 'body: is not valid UTF-8', 'body'), undefined);
    }
  });

  healthRoutes(app, deps);
  ingestRoutes(app, { log: deps.log, stations: new StationKeys(deps.db), metrics: deps.metrics });
  historyRoutes(app, deps);
  searchRoutes(app, deps);
  exportRoutes(app, deps);
  streamRoutes(app, deps);
  projectionAdminRoutes(app, deps);
  schemaRoutes(app, { registry: deps.log.codec.registry });
  const blobs = new BlobStore(deps.config.blobDir);
  const tokens = userTokensOf(deps.config);
  const caller = userOf(tokens);
  userTokenRoutes(app, { config: deps.config, tokens, userOf: caller });
  const uploads = uploadRoutes(app, { ...deps, blobs, userOf: caller });
  app.addHook('onClose', async () => uploads.stop());
  encodeRoutes(app, { ...deps, blobs, userOf: caller });
  analyticsRoutes(app, deps);

  const pages = new Map<string, string>();
  const page = (name: string) => {
    let text = pages.get(name);
    if (text === undefined) pages.set(name, (text = readFileSync(new URL(`../web/${name}`, import.meta.url), 'utf8')));
    return text;
  };
  app.get('/', (_req, reply) => reply.type('text/html; charset=utf-8').send(page('index.html')));
  app.get('/theme.css', (_req, reply) => reply.type('text/css; charset=utf-8').send(page('theme.css')));
  app.get('/search', (_req, reply) => reply.type('text/html; charset=utf-8').send(page('search.html')));
  app.get('/admin', (_req, reply) => reply.type('text/html; charset=utf-8').send(page('admin.html')));
  app.get('/upload', (_req, reply) => reply.type('text/html; charset=utf-8').send(page('upload.html')));
  // The upload page's tus client, served from our own node_modules (no CDN).
  const tusClient = readFileSync(new URL('../../node_modules/tus-js-client/dist/tus.min.js', import.meta.url));
  app.get('/vendor/tus.min.js', (_req, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600').send(tusClient));
  app.get('/v1/config', async (req) => ({
    liveUrl:
      deps.config.publicLiveUrl ??
      `${req.protocol === 'https' ? 'wss' : 'ws'}://${(req.headers.host ?? 'localhost').replace(/:\d+$/, '')}:${deps.config.fanoutPort}/v1/live`,
  }));
  return app;
}
