// The HTTP API: wiring of its route groups. No business logic here. Every route lives in a group
// (access.ts) whose hook decides who may call it; errors of every route go through errors.ts.
import compress from '@fastify/compress';
import cors from '@fastify/cors';
import type { Socket } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type FastifyRequest } from 'fastify';
import { BlobStore } from '../../infra/blobs/blob-store.ts';
import { userTokensOf, type Config } from '../../infra/config.ts';
import type { Db } from '../../projections/database.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import type { EventLog } from '../../infra/kafka/index.ts';
import type { Logger } from '../../infra/logger.ts';
import type { Registry } from '../../infra/metrics.ts';
import type { StationKeys } from '../../infra/stations.ts';
import { guarded, type Access, type RouteInfo } from './access.ts';
import { adminRoutes } from './admin.ts';
import { alertRoutes } from './alerts.ts';
import { analyticsRoutes } from './analytics.ts';
import { deliveryRoutes } from './deliveries.ts';
import { devMailRoutes } from './dev-mail-page.ts';
import { encodeRoutes } from './encodes.ts';
import { errorHandler, HttpError, PROBLEM_TYPE, problemBody, registerErrors } from './errors.ts';
import { exportRoutes } from './export.ts';
import { healthRoutes } from './health.ts';
import { historyRoutes } from './history.ts';
import { bodyCutShort, ingestRoutes } from './ingest.ts';
import { pageRoutes } from './pages.ts';
import type { Reads } from './reads.ts';
import { schemaRoutes } from './schemas.ts';
import { searchRoutes } from './search.ts';
import { canWatchIdRoutes, canWatchStreamRoutes, userStreamRoutes } from './streams.ts';
import { userTokenRoutes } from './user-tokens.ts';
import { unsubscribeRoutes } from './unsubscribe.ts';
import { uploadRoutes } from './uploads.ts';
import { originAllowed } from '../../infra/origins.ts';
import { documentRoutes, registerDocsPage, registerOpenApi } from './openapi.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export interface ApiDeps {
  config: Config;
  db: Db;
  /** The pool and budget of expensive reads. */
  reads: Reads;
  log: EventLog;
  logger: Logger;
  metrics: Registry;
  store: EventStore;
  stations: StationKeys;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route with the group that guards it. */
    routeTable: RouteInfo[];
  }
}

/** Ingest streams and upload bodies keep their own idle rules; everything else gets seconds. */
function bodyIdleTimeoutOf(req: FastifyRequest, config: Config): number | undefined {
  if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return undefined;
  const streamed = req.routeOptions.config.streamedBody;
  if (streamed === 'ingest') return undefined; // ingest.ts ends an idle stream with a last line
  return streamed === 'upload' ? config.uploadIdleTimeoutMs : config.bodyIdleTimeoutMs;
}

/**
 * A request Node could not parse. A station that half-closed its ingest stream before the body
 * was complete still reads its answers (ingest.ts writes them); anything else gets a 400 (or 408,
 * 431) in the one problem shape, and the connection is closed.
 */
function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  const ingest = bodyCutShort.get(socket);
  if (ingest) return ingest();
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, text, problem] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', 'request: not received in time']
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'headers: too large']
        : [400, 'Bad Request', `request: malformed HTTP (${err.code ?? 'parse error'})`];
  const body = problemBody(status, problem, problem.split(':')[0]);
  if (socket.writable && socket.bytesWritten === 0) {
    const head = [
      `HTTP/1.1 ${status} ${text}`,
      `Content-Type: ${PROBLEM_TYPE}`,
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Connection: close',
    ];
    socket.write(`${head.join('\r\n')}\r\n\r\n${body}`);
  }
  socket.destroy(err);
}

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const { config } = deps;
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // No limit on a whole request: a station's ingest stream may stay open for hours. Instead,
    // bodies have idle timeouts (below and in ingest.ts), headers must arrive within seconds,
    // and an idle keep-alive connection is closed.
    requestTimeout: 0,
    connectionTimeout: 0,
    keepAliveTimeout: 72_000,
    http: { headersTimeout: 10_000 },
    bodyLimit: 1024 * 1024,
    trustProxy: true, // castlog sits behind a trusted proxy (it also sets x-userid)
    clientErrorHandler,
    // An unknown parameter is a mistake worth telling the caller about, not something to drop.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  }) as unknown as FastifyInstance;
  app.decorate('routeTable', [] as RouteInfo[]);
  registerErrors(app, () => app.routeTable);

  // JSON bodies must be valid UTF-8: a replacement character silently stored is worse than a 400.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(utf8.decode(body as Buffer)));
    } catch (e) {
      done(
        new HttpError(400, e instanceof SyntaxError ? `body: malformed JSON: ${e.message}` : 'body: is not valid UTF-8', 'body'),
        undefined,
      );
    }
  });

  // Every response: no MIME sniffing, no referrer leaking ids in URLs.
  app.addHook('onSend', async (_req, reply) => {
    reply.header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
  });
  // A body that stalls is ended in seconds, not held forever.
  app.addHook('onRequest', async (req, reply) => {
    const ms = bodyIdleTimeoutOf(req, config);
    if (!ms) return;
    req.raw.setTimeout(ms, () => {
      if (!reply.sent && !reply.raw.headersSent) {
        const body = problemBody(408, `body: nothing received for ${ms / 1000} s`, 'body');
        reply.raw.writeHead(408, {
          'content-type': PROBLEM_TYPE,
          'content-length': Buffer.byteLength(body),
          connection: 'close',
        });
        reply.raw.end(body);
      }
      req.raw.destroy();
    });
  });
  // The body has arrived (a streamed body's handler clears it when it has read it).
  app.addHook('preHandler', async (req) => {
    if (!req.routeOptions.config.streamedBody) req.raw.setTimeout(0);
  });
  // One CORS policy for every route (tus routes apply the same one in uploads.ts).
  await app.register(cors, {
    origin: (origin, cb) => cb(null, origin !== undefined && originAllowed(origin, config.allowedOrigins)),
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: [
      'authorization',
      'content-type',
      'x-userid',
      'tus-resumable',
      'upload-length',
      'upload-offset',
      'upload-metadata',
      'upload-checksum',
      'upload-defer-length',
      'upload-concat',
      'x-http-method-override',
      'range',
    ],
    exposedHeaders: [
      'location',
      'upload-offset',
      'upload-length',
      'upload-metadata',
      'upload-expires',
      'tus-resumable',
      'tus-version',
      'tus-extension',
      'tus-max-size',
      'tus-checksum-algorithm',
      'content-range',
      'content-disposition',
      'retry-after',
    ],
    maxAge: 600,
    strictPreflight: false,
  });

  // Answers compressed as the client accepts: text and JSON (video, bytes and partial content go as
  // they are); ingest's acknowledgements (NDJSON) and tus write their own replies, untouched.
  await app.register(compress, {
    globalDecompression: false,
    encodings: ['br', 'gzip'],
    customTypes: /^text\/(?!event-stream)|[/+]json(?:;|$)|javascript/,
  });
  // The OpenAPI document sees every route registered after this.
  await registerOpenApi(app);
  const tokens = userTokensOf(config);
  const access = { adminToken: config.adminToken, tokens, stations: deps.stations };
  const group = (a: Access, prefix: string, routes: FastifyPluginAsync) =>
    app.register(guarded(a, access, app.routeTable, routes), { prefix });
  const blobs = new BlobStore(config.blobDir);

  await group('public', '', healthRoutes(deps));
  await group('public', '', documentRoutes(app, deps.log.codec.registry));
  await registerDocsPage(app);
  await group('public', '', pageRoutes(config));
  await group('public', '/v1/channels', historyRoutes(deps.reads));
  await group('public', '/v1/channels', exportRoutes(deps.reads));
  await group('station', '/v1/channels', ingestRoutes({ ...deps, stations: deps.stations }));
  await group('public', '/v1/search', searchRoutes(deps.reads));
  await group('public', '/v1/analytics', analyticsRoutes(deps));
  await group('public', '/v1/schemas', schemaRoutes({ registry: deps.log.codec.registry }));
  await group('user', '/v1/uploads', uploadRoutes({ ...deps, blobs }));
  await group('user', '/v1/encodes', encodeRoutes({ ...deps, blobs }));
  await group('user', '/v1/users', userTokenRoutes({ tokens }));
  await group('user', '/v1/users', userStreamRoutes(deps));
  await group('user', '/v1/alerts', alertRoutes(deps));
  await group('user', '/v1/deliveries', deliveryRoutes(deps));
  await group('public', '/v1/unsubscribe', unsubscribeRoutes(deps));
  await group('public', '/mail', devMailRoutes(config));
  await group('admin', '/v1/admin', adminRoutes(deps));
  // canWatch's routes answer errors in its own shape (with "status": "ko").
  await app.register(async (canWatch) => {
    canWatch.setErrorHandler(errorHandler('canWatch'));
    await canWatch.register(guarded('public', access, app.routeTable, canWatchIdRoutes(deps)));
    await canWatch.register(guarded('user', access, app.routeTable, canWatchStreamRoutes(deps)), { prefix: '/streams' });
  });
  return app;
}
