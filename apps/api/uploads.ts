// tus 1.0 resumable uploads at /v1/uploads/ (core, creation, creation-with-upload, checksum,
// termination, expiration), spoken by @tus/server over our own data store (upload-store.ts).
// Fastify hands the raw request to tus untouched; this edge checks who asks (x-userid) and what
// checksum they sent (the user group's hook in access.ts has checked who asks), and gives every
// error the one problem shape (errors.ts). GET /v1/uploads/{id} is not tus:
// it tells the owner how their upload stands, rejection reason included.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Server as TusServer } from '@tus/server';
import { NodeRequest, sendNodeResponse } from 'srvx/node';
import { DomainError } from '../../domain/decider.ts';
import { isUuid } from '../../domain/ids.ts';
import { UploadTooLarge } from '../../domain/uploads/upload.ts';
import type { BlobStore } from '../../infra/blobs/blob-store.ts';
import type { Config } from '../../infra/config.ts';
import type { Db } from '../../projections/database.ts';
import { EventStoreUnavailable, type EventStore } from '../../infra/eventstore/port.ts';
import type { Logger } from '../../infra/logger.ts';
import { originAllowed } from '../../infra/origins.ts';
import { requireUser } from './access.ts';
import { HttpError, PROBLEM_TYPE, problemBody } from './errors.ts';
import { UploadStore, type UploadRequest } from './upload-store.ts';
import { UploadLocker } from './upload-locker.ts';
import { json, nullableString, obj, params, uuid } from './api-schemas.ts';

const PATH = '/v1/uploads';
const CHECKSUMS = { sha1: 20, sha256: 32 } as const;

function checksumOf(req: FastifyRequest): UploadRequest['checksum'] {
  const header = req.headers['upload-checksum'];
  if (header === undefined) return undefined;
  const [algorithm, b64, extra] = String(header).trim().split(/\s+/);
  if (!algorithm || !b64 || extra !== undefined)
    throw new HttpError(400, 'upload-checksum: must be "<algorithm> <base64 digest>"', 'upload-checksum');
  if (!(algorithm in CHECKSUMS))
    throw new HttpError(400, `upload-checksum: algorithm ${algorithm} is not supported; use sha1 or sha256`, 'upload-checksum');
  const digest = Buffer.from(b64, 'base64');
  if (digest.length !== CHECKSUMS[algorithm as keyof typeof CHECKSUMS])
    throw new HttpError(400, `upload-checksum: not a base64 ${algorithm} digest`, 'upload-checksum');
  return { algorithm: algorithm as 'sha1' | 'sha256', digest };
}

/** Which request header a tus error is about, so the JSON names the field. */
const TUS_FIELDS: [RegExp, string][] = [
  [/offset/i, 'upload-offset'],
  [/size exceeded|length/i, 'upload-length'],
  [/metadata/i, 'upload-metadata'],
  [/content-type/i, 'content-type'],
  [/tus-resumable/i, 'tus-resumable'],
  [/concat/i, 'upload-concat'],
  [/terminate/i, 'uploadId'],
  [/file for this url|not found/i, 'uploadId'],
];

/** A tus answer's body as our problem body: ours pass through, tus's plain text gets its field. */
function problemOf(status: number, text: string): string {
  let ours: { error?: unknown; field?: string } | undefined;
  try {
    ours = JSON.parse(text);
  } catch {
    // a plain-text tus message
  }
  if (typeof ours?.error === 'string') return problemBody(status, ours.error, ours.field);
  const message = text.trim() || 'request failed';
  const field = TUS_FIELDS.find(([re]) => re.test(message))?.[1] ?? (status < 500 ? 'request' : undefined);
  return problemBody(status, field ? `${field}: ${message}` : message, field);
}

/** Maps what our store throws to tus's {status_code, body}; the edge then makes bodies JSON. */
function tusErrorOf(err: unknown): { status_code: number; body: string } | undefined {
  if (err instanceof EventStoreUnavailable) return { status_code: 503, body: JSON.stringify({ error: 'Service Unavailable' }) };
  if (err instanceof UploadTooLarge)
    return { status_code: 413, body: JSON.stringify({ error: err.message, field: err.message.split(':')[0] }) };
  if (err instanceof DomainError) {
    const status = { not_found: 404, conflict: 409, invalid: 400 }[err.kind];
    return { status_code: status, body: JSON.stringify({ error: err.message, field: err.message.split(':')[0] }) };
  }
  return undefined;
}

export function uploadRoutes(deps: { store: EventStore; blobs: BlobStore; config: Config; db: Db; logger: Logger }): FastifyPluginAsync {
  const context = new AsyncLocalStorage<UploadRequest>();
  // The store is told when locks were lost (it then checks those uploads' bytes at completion).
  const locker = new UploadLocker(deps.config.databaseUrl, deps.logger, (ids) => store.forget(ids));
  const store = new UploadStore(deps, context, locker);
  const tus = new TusServer({
    path: PATH,
    datastore: store,
    locker,
    maxSize: deps.config.uploadMaxBytes,
    relativeLocation: true,
    namingFunction: () => randomUUID(),
    // A finished upload is a file others may have encodes of; deleting it is not a tus matter.
    disableTerminationForFinishedUploads: true,
    // The same CORS policy as every other route (server.ts).
    allowedOrigins: (origin) => originAllowed(origin, deps.config.allowedOrigins),
    allowedHeaders: ['Upload-Checksum', 'X-UserId', 'Authorization'],
    exposedHeaders: ['Upload-Expires', 'Tus-Checksum-Algorithm'],
    onUploadFinish: async (_req, file) => {
      const { rejected } = await store.finish(file.id);
      if (rejected) throw { status_code: 422, body: JSON.stringify({ error: rejected, field: 'file' }) };
      return {};
    },
    onResponseError: (_req, err) => {
      const mapped = tusErrorOf(err);
      if (!mapped && !('status_code' in err)) deps.logger.error({ err }, 'upload request failed');
      return mapped;
    },
  });

  /** Anyone but the owner is told the upload does not exist; an unreachable store stays a 503. */
  const notFound = (id: string) => (err: unknown) => {
    throw err instanceof EventStoreUnavailable ? err : new HttpError(404, `uploadId: no upload ${id}`, 'uploadId');
  };
  const owned = (id: string, userId: string) => store.owned(id, userId).catch(notFound(id));

  return async (scope) => {
    // tus reads the body itself, as a stream: fastify must not parse or buffer it.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null));
    // tus expiration: unfinished uploads past their time are expired and their bytes removed.
    const sweep = setInterval(
      () => {
        void context
          .run({ userId: '' }, () => tus.cleanUpExpiredUploads())
          .catch((err) => deps.logger.warn({ err }, 'upload expiry sweep failed'));
      },
      Math.min(60_000, Math.max(1000, Math.floor(deps.config.uploadExpiryMs / 4))),
    );
    sweep.unref();
    scope.addHook('onClose', async () => {
      clearInterval(sweep);
      await Promise.all([locker.close(), store.close()]);
    });

    const viaTus = async (req: FastifyRequest, reply: FastifyReply) => {
      const method = tusMethodOf(req);
      // A browser's CORS preflight carries no user; everything else must say who it is.
      const ctx: UploadRequest = method === 'OPTIONS' ? { userId: '' } : { userId: requireUser(req), checksum: checksumOf(req) };
      const id = (req.params as { id?: string }).id || undefined; // '/v1/uploads/' is the collection
      if (id !== undefined && method !== 'OPTIONS') {
        if (!isUuid(id)) throw new HttpError(404, `uploadId: no upload ${id}`, 'uploadId');
        await store.checkOwner(id, ctx.userId).catch(notFound(id));
      }
      if (method === 'POST') refuseOversizedCreation(req);
      req.raw.method = method;
      // tus reads the upload id from the URL itself: give it the one that was routed and checked,
      // whatever spelling of the URL the request used.
      req.raw.url = id === undefined ? `${PATH}/` : `${PATH}/${id.toLowerCase()}`;
      reply.hijack();
      const request = new NodeRequest({ req: req.raw, res: reply.raw });
      let response = await context.run(ctx, () => tus.handleWeb(request));
      req.raw.setTimeout(0); // the body is read: the idle rule for it ends
      // A creation whose body then failed (longer than Upload-Length without saying so up front)
      // leaves nothing behind; a rejected upload (422) stays, with its reason.
      if (ctx.created && response.status >= 400 && response.status !== 422) await context.run(ctx, () => store.discard(ctx.created!));
      if (method === 'OPTIONS') response.headers.set('Tus-Checksum-Algorithm', Object.keys(CHECKSUMS).join(','));
      if (response.status >= 400) {
        const body = problemOf(response.status, await response.text());
        const headers = new Headers(response.headers);
        headers.set('content-type', PROBLEM_TYPE);
        headers.set('content-length', String(Buffer.byteLength(body)));
        response = new Response(body, { status: response.status, headers });
      }
      await sendNodeResponse(reply.raw, response);
    };

    const methods = ['POST', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS'] as const;
    const config = { streamedBody: 'upload' as const };
    scope.route({ method: [...methods], url: '/', handler: viaTus, exposeHeadRoute: false, config });
    scope.route({ method: [...methods], url: '/:id', handler: viaTus, exposeHeadRoute: false, config });
    const uploadDoc = {
      summary: 'One of my uploads: status, offset, checksum',
      params: params({ id: { type: 'string' } }),
      response: {
        200: json(
          'The upload',
          obj(
            {
              uploadId: uuid,
              status: { type: 'string' },
              filename: nullableString,
              filetype: nullableString,
              raw: { type: 'boolean' },
              length: { type: ['integer', 'null'] },
              offset: { type: 'integer' },
              sha256: nullableString,
              reason: nullableString,
              createdAt: { type: ['integer', 'null'] },
            },
            ['uploadId', 'status', 'offset'],
          ),
        ),
      },
    };
    scope.get<{ Params: { id: string } }>('/:id', { schema: uploadDoc }, async (req) => {
      const userId = requireUser(req);
      const id = req.params.id;
      if (!isUuid(id)) throw new HttpError(404, `uploadId: no upload ${id}`, 'uploadId');
      const state = await owned(id.toLowerCase(), userId);
      return {
        uploadId: id.toLowerCase(),
        status: state.status,
        filename: state.filename,
        filetype: state.filetype,
        raw: state.raw,
        length: state.length,
        offset: state.offset,
        sha256: state.sha256,
        reason: state.reason,
        createdAt: state.createdAt,
      };
    });
  };
}

const OVERRIDABLE = new Set(['PATCH', 'DELETE', 'HEAD']);

/**
 * tus 1.0: a server MUST take X-HTTP-Method-Override as the method, for clients whose HTTP stack
 * cannot send PATCH (Java's HttpURLConnection sends POST with the override). Honoured on POST,
 * which is what such clients send, and only for the tus methods that can need it.
 */
function tusMethodOf(req: FastifyRequest): string {
  const override = req.headers['x-http-method-override'];
  if (override === undefined || req.method !== 'POST') return req.method;
  const method = String(override).trim().toUpperCase();
  if (!OVERRIDABLE.has(method))
    throw new HttpError(
      400,
      `x-http-method-override: must be PATCH, DELETE or HEAD, not ${JSON.stringify(override)}`,
      'x-http-method-override',
    );
  return method;
}

/**
 * creation-with-upload: a body that says up front it is longer than the upload is refused before
 * the upload is created, so nothing remains of it.
 */
function refuseOversizedCreation(req: FastifyRequest): void {
  const declared = Number(req.headers['upload-length']);
  const body = Number(req.headers['content-length']);
  if (Number.isSafeInteger(declared) && Number.isSafeInteger(body) && body > declared) {
    throw new HttpError(413, `content-length: the body (${body} bytes) is longer than upload-length (${declared} bytes)`, 'content-length');
  }
}
