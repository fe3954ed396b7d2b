// One-click unsubscribe from an alert's e-mails (RFC 8058), with the signed link every alert e-mail
// carries (infra/signing.ts unsubscribeToken). GET shows a page with a button and changes nothing:
// link scanners and mail clients fetch links on their own. POST with "List-Unsubscribe=One-Click"
// (what mail clients send for the List-Unsubscribe-Post header, and what the button sends) decides
// StopEmail through the user's alerts decider — AlertEmailStopped — and the alert's e-mails that
// have not left yet are not sent. The alert itself stays (its matches, its webhook).
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { userAlerts, userAlertsStream, type AlertCommand } from '../../domain/alerts/alerts.ts';
import { escapeHtml } from '../../domain/captions/snippet.ts';
import type { Config } from '../../infra/config.ts';
import { cancelPendingEmails } from '../../infra/deliveries.ts';
import { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import { readUnsubscribeToken } from '../../infra/signing.ts';
import type { Db } from '../../projections/database.ts';
import { badRequest, HttpError } from './errors.ts';
import { htmlPage, sendPage } from './html-page.ts';
import { media, obj, uuid } from './api-schemas.ts';

const SOURCE = '/api/unsubscribe';
const MAX_BODY = 4096;

type Request = FastifyRequest<{ Querystring: { token?: string } }>;

/** The form fields of a one-click body: application/x-www-form-urlencoded or multipart/form-data. */
function formFields(contentType: string, body: string): Map<string, string> {
  if (contentType.startsWith('multipart/form-data')) {
    const fields = new Map<string, string>();
    for (const m of body.matchAll(/content-disposition:\s*form-data;\s*name="([^"]*)"[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n([^\r\n]*)/gi)) {
      fields.set(m[1]!, m[2]!);
    }
    return fields;
  }
  return new Map(new URLSearchParams(body));
}

export function unsubscribeRoutes(deps: { store: EventStore; db: Db; config: Config }): FastifyPluginAsync {
  const { store, db, config } = deps;
  const handler = new CommandHandler(store);

  function whoOf(req: Request): { userId: string; alertId: string } {
    if (!config.signingSecret) throw new HttpError(503, 'token: unsubscribe links are not enabled here (SIGNING_SECRET)', 'token');
    const token = req.query.token;
    if (!token) throw badRequest('token', 'required: the link from the e-mail');
    const who = token.length <= 1000 ? readUnsubscribeToken(config.signingSecret, token) : undefined;
    if (!who) throw badRequest('token', 'is not a valid unsubscribe link (copy the whole link from the e-mail)');
    return who;
  }

  const wantsHtml = (req: FastifyRequest) => /\btext\/html\b/.test(req.headers.accept ?? '');
  const page = (reply: FastifyReply, title: string, body: string) =>
    sendPage(reply, config, htmlPage(title, `<div class="panel"><h1>${escapeHtml(title)}</h1>${body}</div>`));

  return async (app) => {
    // Form bodies, for these routes only: the one-click POST and the page's button.
    app.addContentTypeParser(
      ['application/x-www-form-urlencoded', 'multipart/form-data'],
      { parseAs: 'string', bodyLimit: MAX_BODY },
      (req, body, done) => done(null, formFields(req.headers['content-type'] ?? '', body as string)),
    );
    const querystring = {
      type: 'object',
      additionalProperties: false,
      properties: { token: { type: 'string', maxLength: 1000 } },
    };

    const html = ['text/html'];
    const getDoc = {
      summary: "The one-click unsubscribe page of an alert's e-mails (changes nothing)",
      response: { 200: media('The page', html) },
    };
    app.get<{ Querystring: { token?: string } }>('/', { schema: { querystring, ...getDoc } }, async (req, reply) => {
      const { userId, alertId } = whoOf(req);
      const { state } = await store.load(userAlertsStream(userId), userAlerts.initialState, userAlerts.evolve);
      const alert = state.alerts.find((a) => a.alertId === alertId);
      if (!alert) return page(reply, 'This alert no longer exists', '<p>It sends no e-mail.</p>');
      const name = `<p>The castlog alert <strong>“${escapeHtml(alert.query)}”</strong>`;
      if (!alert.email) return page(reply, 'E-mails are stopped', `${name} sends no more e-mail.</p>`);
      const action = `/v1/unsubscribe?token=${encodeURIComponent(req.query.token!)}`;
      return page(
        reply,
        'Stop these e-mails?',
        `${name} e-mails ${escapeHtml(alert.email)} when it matches.</p>
<form method="post" action="${escapeHtml(action)}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Stop e-mails from this alert</button>
</form>
<p class="muted">The alert itself stays: its matches still show on <a href="/alerts">your alerts</a>.</p>`,
      );
    });

    const form = { type: 'object', required: ['List-Unsubscribe'], properties: { 'List-Unsubscribe': { const: 'One-Click' } } };
    const postDoc = {
      summary: "Stop an alert's e-mails (RFC 8058 one-click)",
      response: {
        200: {
          description: 'Stopped: a page for a browser (Accept: text/html), JSON otherwise',
          content: {
            'application/json': { schema: obj({ alertId: uuid, emailStopped: { const: true } }) },
            'text/html': { schema: { type: 'string' } },
          },
        },
      },
    };
    // The form body is documented only: the handler checks it.
    const body = { content: { 'application/x-www-form-urlencoded': { schema: form }, 'multipart/form-data': { schema: form } } };
    app.post<{ Querystring: { token?: string } }>(
      '/',
      { schema: { querystring, ...postDoc }, config: { openapi: { body } } },
      async (req, reply) => {
        const { userId, alertId } = whoOf(req);
        const fields = req.body instanceof Map ? (req.body as Map<string, string>) : undefined;
        if (fields?.get('List-Unsubscribe') !== 'One-Click') {
          throw badRequest('List-Unsubscribe', 'the body must be the form field List-Unsubscribe=One-Click');
        }
        await handler.handle(
          userAlerts,
          userAlertsStream(userId),
          (): AlertCommand => ({ type: 'StopEmail', alertId, userId, now: Date.now() }),
          {
            key: alertId,
            source: SOURCE,
          },
        );
        const cancelled = await cancelPendingEmails(db, alertId, 'unsubscribed');
        req.log.info({ alertId, cancelled }, 'alert e-mails stopped');
        if (wantsHtml(req)) return page(reply, 'E-mails stopped', '<p>This alert sends no more e-mail.</p>');
        return { alertId, emailStopped: true };
      },
    );
  };
}
