// The browser pages, the stylesheet and script module they share, the tus client they load, and
// /v1/config. Pages go out with a Content-Security-Policy that allows only their own scripts and
// styles (the files below, and their inline blocks by hash: no 'unsafe-inline'), the api and the
// fanout's WebSocket, and no framing. Everything here is compressed (server.ts: br/gzip, as the
// browser accepts) and carries an ETag, so a page opened again costs a 304.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../../infra/config.ts';
import { json, media, nullableString, obj } from './api-schemas.ts';

/** A file served with its ETag: 200, or 304 to a matching If-None-Match. */
const staticDoc = (summary: string, type: string) => ({
  summary,
  response: { 200: media('The file', [type.split(';')[0]!]), 304: { description: 'Not modified', type: 'null' } },
});
const configDoc = {
  summary: 'Where the pages find the live WebSocket',
  response: {
    200: json(
      'The live URL, or the fanout port and path',
      obj({ liveUrl: nullableString, livePort: { type: 'integer' }, livePath: { type: 'string' } }),
    ),
  },
};

const PAGES = {
  '/': 'index.html',
  '/search': 'search.html',
  '/alerts': 'alerts.html',
  '/admin': 'admin.html',
  '/upload': 'upload.html',
} as const;
/** Files the pages load from /assets/. */
const ASSETS = { 'theme.css': 'text/css; charset=utf-8', 'common.js': 'text/javascript; charset=utf-8' } as const;
const LIVE_PATH = '/v1/live';

const read = (name: string) => readFileSync(new URL(`../web/${name}`, import.meta.url));
const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Hashes of a page's inline <script> and <style> blocks (a <script src> is not inline), for its CSP. */
function inlineHashes(html: string, tag: 'script' | 'style'): string[] {
  return [...html.matchAll(new RegExp(`<${tag}(\\s[^>]*)?>([\\s\\S]*?)</${tag}>`, 'g'))]
    .filter((m) => !/\ssrc=/.test(m[1] ?? ''))
    .map((m) => sha256(m[2]!));
}

/** Where the pages' WebSocket may connect: the configured live URL, else the fanout port on any host. */
function liveSources(config: Config): string {
  if (config.publicLiveUrl) return new URL(config.publicLiveUrl).origin.replace(/^http/, 'ws');
  return `ws://*:${config.fanoutPort} wss://*:${config.fanoutPort}`;
}

export function contentSecurityPolicy(html: string, config: Config): string {
  return [
    "default-src 'none'",
    `script-src 'self' ${inlineHashes(html, 'script').join(' ')}`.trim(),
    `style-src 'self' ${inlineHashes(html, 'style').join(' ')}`.trim(),
    `connect-src 'self' ${liveSources(config)}`,
    "img-src 'self' data:",
    "media-src 'self' blob:",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** A file served as it is read at start, with its validator. */
interface StaticFile {
  body: Buffer;
  type: string;
  /** Weak: the same ETag names the br, gzip and plain encodings of one content. */
  etag: string;
  cacheControl: string;
  headers?: Record<string, string>;
}

function staticFile(body: Buffer, type: string, cacheControl: string, headers?: Record<string, string>): StaticFile {
  return { body, type, etag: `W/"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`, cacheControl, headers };
}

/** RFC 9110's weak comparison: any listed tag (or "*") that names this content. */
function notModified(req: FastifyRequest, etag: string): boolean {
  const header = req.headers['if-none-match'];
  if (!header) return false;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
  return header.split(',').some((tag) => tag.trim() === '*' || opaque(tag) === opaque(etag));
}

function serve(req: FastifyRequest, reply: FastifyReply, file: StaticFile) {
  reply.header('etag', file.etag).header('cache-control', file.cacheControl);
  if (file.headers) reply.headers(file.headers);
  if (notModified(req, file.etag)) return reply.code(304).send();
  return reply.type(file.type).send(file.body);
}

export function pageRoutes(config: Config): FastifyPluginAsync {
  return async (app) => {
    // Pages and their assets change with a deployment: the browser asks again each time (no-cache)
    // and gets a 304 while nothing changed.
    for (const [path, name] of Object.entries(PAGES)) {
      const html = read(name);
      const file = staticFile(html, 'text/html; charset=utf-8', 'no-cache', {
        'content-security-policy': contentSecurityPolicy(html.toString('utf8'), config),
        'x-frame-options': 'DENY',
      });
      app.get(path, { schema: staticDoc(`The ${name} page`, 'text/html') }, (req, reply) => serve(req, reply, file));
    }
    for (const [name, type] of Object.entries(ASSETS)) {
      const file = staticFile(read(name), type, 'no-cache');
      app.get(`/assets/${name}`, { schema: staticDoc(`The pages' ${name}`, type) }, (req, reply) => serve(req, reply, file));
    }
    // The upload page's tus client, served from our own node_modules (no CDN).
    const tusClient = staticFile(
      readFileSync(new URL('../../node_modules/tus-js-client/dist/tus.min.js', import.meta.url)),
      'text/javascript; charset=utf-8',
      'public, max-age=3600',
    );
    app.get('/vendor/tus.min.js', { schema: staticDoc('tus-js-client, for the upload page', tusClient.type) }, (req, reply) =>
      serve(req, reply, tusClient),
    );
    // The live URL comes from configuration, never from the request's Host header: without
    // PUBLIC_LIVE_URL the page uses its own host name with the fanout's port and path.
    app.get('/v1/config', { schema: configDoc }, async () => ({
      liveUrl: config.publicLiveUrl ?? null,
      livePort: config.fanoutPort,
      livePath: LIVE_PATH,
    }));
  };
}
