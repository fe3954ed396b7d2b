// The browser pages, their stylesheet, the tus client they load, and /v1/config. Pages go out
// with a Content-Security-Policy that allows only their own scripts and styles (by hash), the
// api and the fanout's WebSocket, and no framing.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import type { Config } from '../../infra/config.ts';

const PAGES = { '/': 'index.html', '/search': 'search.html', '/admin': 'admin.html', '/upload': 'upload.html' } as const;
const LIVE_PATH = '/v1/live';

const read = (name: string) => readFileSync(new URL(`../web/${name}`, import.meta.url), 'utf8');
const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Hashes of a page's inline <script> and <style> blocks, for its CSP. */
function inlineHashes(html: string, tag: 'script' | 'style'): string[] {
  return [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => sha256(m[1]!));
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

export function pageRoutes(config: Config): FastifyPluginAsync {
  return async (app) => {
    for (const [path, file] of Object.entries(PAGES)) {
      const html = read(file);
      const csp = contentSecurityPolicy(html, config);
      app.get(path, (_req, reply) =>
        reply.type('text/html; charset=utf-8').header('content-security-policy', csp).header('x-frame-options', 'DENY').send(html),
      );
    }
    const theme = read('theme.css');
    app.get('/theme.css', (_req, reply) => reply.type('text/css; charset=utf-8').send(theme));
    // The upload page's tus client, served from our own node_modules (no CDN).
    const tusClient = readFileSync(new URL('../../node_modules/tus-js-client/dist/tus.min.js', import.meta.url));
    app.get('/vendor/tus.min.js', (_req, reply) =>
      reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=3600').send(tusClient),
    );
    // The live URL comes from configuration, never from the request's Host header: without
    // PUBLIC_LIVE_URL the page uses its own host name with the fanout's port and path.
    app.get('/v1/config', async () => ({ liveUrl: config.publicLiveUrl ?? null, livePort: config.fanoutPort, livePath: LIVE_PATH }));
  };
}
