// Development only: the e-mails the local SMTP server kept (apps/dev-mail), at /mail — a list, and
// each message with its headers, its text, its HTML (in a sandboxed frame) and its unsubscribe
// link, which works as it would from a mailbox. The routes exist only when DEV_MAIL_DIR is set
// (`npm start` sets it when SMTP_URL is not).
import type { FastifyPluginAsync } from 'fastify';
import type { AddressObject, ParsedMail } from 'mailparser';
import { escapeHtml } from '../../domain/captions/snippet.ts';
import type { Config } from '../../infra/config.ts';
import { listMail, readMail } from '../../infra/dev-mailbox.ts';
import { HttpError } from './errors.ts';
import { htmlPage, sendPage } from './html-page.ts';
import { media, params } from './api-schemas.ts';

/** Messages listed (newest first). */
const LISTED = 100;
/** The message's own HTML runs nothing and loads nothing from anywhere. */
const MESSAGE_POLICY = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const addresses = (a: AddressObject | AddressObject[] | undefined) =>
  [a ?? []]
    .flat()
    .map((x) => x.text)
    .join(', ');
const when = (d: Date | undefined) =>
  d
    ? d
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, ' UTC')
    : '';

/** The one-click link of List-Unsubscribe, as mailparser reads it. */
const unsubscribeOf = (mail: ParsedMail): string | undefined =>
  (mail.headers.get('list') as { unsubscribe?: { url?: string } } | undefined)?.unsubscribe?.url;

/** A header as the message has it (mailparser folds the List-* ones into one object). */
const rawHeader = (mail: ParsedMail, name: string): string | undefined => {
  const line = mail.headerLines.find((h) => h.key === name)?.line;
  return line?.slice(line.indexOf(':') + 1).trim();
};

export function devMailRoutes(config: Config): FastifyPluginAsync {
  const dir = config.devMailDir;
  return async (app) => {
    if (!dir) return;
    // Loaded here, not at the top: only a development api serves these pages, and mailparser (with
    // its charsets) is a tenth of a second of every api's start.
    const { simpleParser } = await import('mailparser');
    const parsed = async (id: string) => {
      const raw = await readMail(dir, id);
      if (!raw) throw new HttpError(404, `id: no message ${id}`, 'id');
      return simpleParser(raw);
    };

    const id = params({ id: { type: 'string' } });
    const list = (summary: string, type = 'text/html') => ({ summary, response: { 200: media('The page', [type]) } });
    const page = (summary: string, type = 'text/html') => ({ ...list(summary, type), params: id });
    app.get('/', { schema: list('Dev mail (DEV_MAIL_DIR): what castlog e-mailed on this machine') }, async (_req, reply) => {
      const rows: string[] = [];
      for (const { id } of (await listMail(dir)).slice(0, LISTED)) {
        const mail = await parsed(id).catch(() => undefined);
        if (!mail) continue;
        rows.push(
          `<tr><td>${escapeHtml(when(mail.date))}</td><td>${escapeHtml(addresses(mail.to))}</td>` +
            `<td><a href="/mail/${id}">${escapeHtml(mail.subject ?? '(no subject)')}</a></td></tr>`,
        );
      }
      const body = rows.length
        ? `<table><thead><tr><th>received</th><th>to</th><th>subject</th></tr></thead><tbody>${rows.join('\n')}</tbody></table>`
        : '<p class="muted">No e-mail yet. Create an alert with an e-mail address, and its e-mails show here.</p>';
      return sendPage(
        reply,
        config,
        htmlPage(
          'castlog · dev mail',
          '<h1>Dev mail</h1>' +
            `<p class="muted">What castlog e-mailed on this machine (kept in ${escapeHtml(dir)}; nothing was delivered).</p>` +
            `<div class="panel">${body}</div>`,
        ),
      );
    });

    app.get<{ Params: { id: string } }>('/:id', { schema: page('One e-mail') }, async (req, reply) => {
      const { id } = req.params;
      const mail = await parsed(id);
      const unsubscribe = unsubscribeOf(mail);
      const oneClick = rawHeader(mail, 'list-unsubscribe-post');
      const head = [
        ['From', addresses(mail.from)],
        ['To', addresses(mail.to)],
        ['Date', when(mail.date)],
        ['Subject', mail.subject ?? ''],
      ]
        .map(([k, v]) => `<tr><th>${k}</th><td>${escapeHtml(v!)}</td></tr>`)
        .join('');
      const unsubscribeRow = unsubscribe
        ? `<tr><th>Unsubscribe</th><td><a href="${escapeHtml(unsubscribe)}">${escapeHtml(unsubscribe)}</a>` +
          `<br><span class="muted">List-Unsubscribe-Post: ${escapeHtml(oneClick ?? '(none: no one-click)')}</span></td></tr>`
        : '';
      const html = mail.html ? `<h2>HTML</h2><iframe sandbox src="/mail/${id}/html" title="the message as HTML"></iframe>` : '';
      const page = htmlPage(
        mail.subject ?? 'e-mail',
        `<p><a href="/mail">← all e-mail</a> · <a href="/mail/${id}/raw">raw</a></p>
<div class="panel"><table>${head}${unsubscribeRow}</table>
${html}
<h2>Text</h2><pre>${escapeHtml(mail.text ?? '')}</pre></div>`,
      );
      return sendPage(reply, config, page, 200, "frame-src 'self'");
    });

    app.get<{ Params: { id: string } }>('/:id/html', { schema: page('The HTML of one e-mail (sandboxed)') }, async (req, reply) => {
      const mail = await parsed(req.params.id);
      return reply
        .type('text/html; charset=utf-8')
        .header('content-security-policy', MESSAGE_POLICY)
        .header('cache-control', 'no-store')
        .send(mail.html || '');
    });

    app.get<{ Params: { id: string } }>('/:id/raw', { schema: page('One e-mail as sent (RFC 5322)', 'text/plain') }, async (req, reply) => {
      const raw = await readMail(dir, req.params.id);
      if (!raw) throw new HttpError(404, `id: no message ${req.params.id}`, 'id');
      return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(raw);
    });
  };
}
