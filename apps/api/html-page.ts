// Pages the api renders on the server (unsubscribe, dev mail): the shared theme, one small inline
// style, no script, and the same Content-Security-Policy as the static pages.
import type { FastifyReply } from 'fastify';
import type { Config } from '../../infra/config.ts';
import { escapeHtml } from '../../domain/captions/snippet.ts';
import { contentSecurityPolicy } from './pages.ts';

const STYLE = `
  main { max-width: 52rem; margin: 2rem auto; padding: 0 1rem; }
  .panel { background: var(--panel); border: 1px solid var(--line); border-radius: var(--radius); padding: 1rem 1.25rem; }
  button { font: inherit; padding: .5rem 1rem; border-radius: var(--radius); border: 1px solid var(--accent);
           background: var(--accent); color: #fff; cursor: pointer; }
  .muted { color: var(--muted); }
  table { border-collapse: collapse; width: 100%; }
  td, th { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
  td { overflow-wrap: anywhere; }
  pre { white-space: pre-wrap; word-break: break-word; }
  iframe { width: 100%; min-height: 24rem; border: 1px solid var(--line); border-radius: var(--radius); background: #fff; }
`;

/** A whole page: `body` is HTML the caller escaped. */
export function htmlPage(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/theme.css">
<style>${STYLE}</style>
</head>
<body><main>
${body}
</main></body>
</html>
`;
}

/** Sends a page; `extraPolicy` adds directives to its CSP (e.g. frames of its own). */
export function sendPage(reply: FastifyReply, config: Config, html: string, status = 200, extraPolicy = ''): FastifyReply {
  return reply
    .status(status)
    .type('text/html; charset=utf-8')
    .header('content-security-policy', contentSecurityPolicy(html, config) + (extraPolicy ? `; ${extraPolicy}` : ''))
    .header('x-frame-options', 'DENY')
    .header('cache-control', 'no-store')
    .send(html);
}
