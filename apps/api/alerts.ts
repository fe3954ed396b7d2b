// Keyword alerts: POST /v1/alerts (a search to hear about from now on), GET /v1/alerts (mine),
// GET and DELETE /v1/alerts/{id}, GET /v1/alerts/{id}/matches (the history, newest first). The
// user comes from the group's hook (x-userid or a user token); someone else's alert is a 404.
// Definitions are decisions (the per-user cap) in the event store; matches come from the matcher.
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { sql } from 'kysely';
import { checkAlertInput } from '../../domain/alerts/input.ts';
import { userAlerts, userAlertsStream, type AlertCommand, type AlertDefinition } from '../../domain/alerts/alerts.ts';
import { isUuid } from '../../domain/ids.ts';
import type { Config } from '../../infra/config.ts';
import { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import { webhookSecret } from '../../infra/signing.ts';
import { webhookTargetProblem } from '../../infra/webhook-target.ts';
import { requireUser } from './access.ts';
import { badRequest, HttpError } from './errors.ts';
import type { Reads } from './reads.ts';
import { empty, json, nullableString, obj, params, ref, uuid } from './api-schemas.ts';

const SOURCE = '/api/alerts';
const MAX_LIMIT = 100;

interface Deps {
  store: EventStore;
  reads: Reads;
  config: Config;
}

export function alertRoutes(deps: Deps): FastifyPluginAsync {
  const { store, reads, config } = deps;
  const handler = new CommandHandler(store);
  const decide = (userId: string, key: string, command: () => AlertCommand) =>
    handler.handle(userAlerts, userAlertsStream(userId), command, { key, source: SOURCE });
  const mine = async (userId: string) =>
    (await store.load(userAlertsStream(userId), userAlerts.initialState, userAlerts.evolve)).state.alerts;

  const view = (a: AlertDefinition) => ({
    alertId: a.alertId,
    query: a.query,
    channels: a.channels,
    lang: a.lang,
    email: a.email,
    webhook:
      a.webhookUrl && config.signingSecret
        ? { url: a.webhookUrl, secret: webhookSecret(config.signingSecret, `alert:${a.alertId}`) }
        : null,
    createdAt: a.createdAt,
  });

  /** The caller's alert named in the path: someone else's, or none, is a 404. */
  async function ownAlert(req: FastifyRequest<{ Params: { alertId: string } }>): Promise<AlertDefinition> {
    const userId = requireUser(req);
    const { alertId } = req.params;
    const alert = isUuid(alertId) ? (await mine(userId)).find((a) => a.alertId === alertId.toLowerCase()) : undefined;
    if (!alert) throw new HttpError(404, `alertId: no alert ${alertId}`, 'alertId');
    return alert;
  }

  return async (app) => {
    const alertId = params({ alertId: uuid });
    const input = {
      type: 'object',
      required: ['query'],
      additionalProperties: false,
      properties: {
        query: { type: 'string', description: 'A search, in the syntax of /v1/search' },
        channels: { type: ['array', 'null'], items: { type: 'string' } },
        lang: { type: ['string', 'null'] },
        email: { type: ['string', 'null'] },
        webhook: { type: ['object', 'null'], required: ['url'], properties: { url: { type: 'string', format: 'uri' } } },
      },
    };
    const create = {
      summary: 'Create an alert: hear about new captions matching a search (by e-mail and/or webhook)',
      response: { 201: json('The alert', ref('Alert')) },
    };
    // The body is documented only: checkAlertInput checks it and words its errors.
    app.post('/', { schema: create, config: { openapi: { body: input } } }, async (req, reply) => {
      const userId = requireUser(req);
      const input = checkAlertInput(req.body);
      if (input.webhookUrl) {
        // This machine, a private network, link-local (cloud metadata): not a destination.
        const problem = await webhookTargetProblem(input.webhookUrl, config.webhookAllowedHosts);
        if (problem) throw badRequest('webhook.url', problem);
        if (!config.signingSecret) throw new HttpError(503, 'webhook: webhooks are not enabled here (SIGNING_SECRET)', 'webhook');
      }
      // The query as search reads it: the matcher evaluates exactly this.
      const tsquery = await reads.run(async (r) => {
        const { rows } = await sql<{ q: string }>`SELECT public.castlog_search_query(${input.lang}, ${input.query})::text AS q`.execute(r);
        return rows[0]!.q;
      });
      if (!tsquery) throw badRequest('query', 'has no words to search for (only punctuation, operators or stop words)');
      const alertId = randomUUID();
      const { state } = await decide(userId, alertId, () => ({
        type: 'Create',
        alertId,
        userId,
        ...input,
        tsquery,
        maxAlerts: config.alertMaxPerUser,
        now: Date.now(),
      }));
      return reply.status(201).send(view(state.alerts.find((a) => a.alertId === alertId)!));
    });

    const listDoc = {
      summary: 'My alerts',
      response: { 200: json('The alerts', obj({ alerts: { type: 'array', items: ref('Alert') } })) },
    };
    app.get('/', { schema: listDoc }, async (req) => ({ alerts: (await mine(requireUser(req))).map(view) }));

    const oneDoc = { summary: 'One of my alerts', params: alertId, response: { 200: json('The alert', ref('Alert')) } };
    app.get<{ Params: { alertId: string } }>('/:alertId', { schema: oneDoc }, async (req) => view(await ownAlert(req)));

    const deleteDoc = { summary: 'Delete one of my alerts', params: alertId, response: { 204: empty('Deleted') } };
    app.delete<{ Params: { alertId: string } }>('/:alertId', { schema: deleteDoc }, async (req, reply) => {
      const alert = await ownAlert(req);
      const userId = requireUser(req);
      await decide(userId, alert.alertId, () => ({ type: 'Delete', alertId: alert.alertId, userId, now: Date.now() }));
      return reply.status(204).send();
    });

    app.get<{ Params: { alertId: string }; Querystring: { after?: string; limit?: number } }>(
      '/:alertId/matches',
      {
        schema: {
          summary: "An alert's matches, newest first, a page at a time",
          params: alertId,
          response: {
            200: json(
              'A page; next is the after of the next page, null at the end',
              obj({
                alertId: uuid,
                items: {
                  type: 'array',
                  items: obj({
                    position: { type: 'string' },
                    channel: { type: 'string' },
                    station: { type: 'string' },
                    start: { type: 'integer' },
                    text: { type: 'string' },
                    snippet: { type: 'string' },
                    matchedAt: { type: 'integer' },
                  }),
                },
                next: nullableString,
              }),
            ),
          },
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: { after: { type: 'string' }, limit: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: 20 } },
          },
        },
      },
      async (req) => {
        const alert = await ownAlert(req);
        const limit = req.query.limit ?? 20;
        const after = req.query.after === undefined || req.query.after === '' ? undefined : decodeCursor(req.query.after);
        const rows = await reads.run((r) => {
          let q = r
            .selectFrom('alert_matches')
            .select(['position', 'channel', 'station', 'start_ms', 'text', 'snippet', 'matched_at_ms', 'partition', 'offset'])
            .where('alert_id', '=', alert.alertId);
          if (after) q = q.where(sql<boolean>`(matched_at_ms, partition, "offset") < (${after[0]}, ${after[1]}, ${after[2]})`);
          return q
            .orderBy('matched_at_ms', 'desc')
            .orderBy('partition', 'desc')
            .orderBy('offset', 'desc')
            .limit(limit + 1)
            .execute();
        });
        const page = rows.slice(0, limit);
        const last = page.at(-1);
        return {
          alertId: alert.alertId,
          items: page.map((m) => ({
            position: m.position,
            channel: m.channel,
            station: m.station,
            start: m.start_ms,
            text: m.text,
            snippet: m.snippet,
            matchedAt: m.matched_at_ms,
          })),
          next: rows.length > limit && last ? encodeCursor([last.matched_at_ms, last.partition, last.offset]) : null,
        };
      },
    );
  };

  function decodeCursor(text: string): [number, number, number] {
    const bad = () => badRequest('after', 'is not a cursor of this list (use the "next" of the previous page)');
    if (text.length > 100 || !/^[A-Za-z0-9_-]+$/.test(text)) throw bad();
    const parts = Buffer.from(text, 'base64url').toString('utf8').split(':').map(Number);
    if (parts.length !== 3 || !parts.every((n) => Number.isSafeInteger(n) && n >= 0) || parts[1]! >= 2 ** 31) throw bad();
    return parts as [number, number, number];
  }
}

const encodeCursor = (parts: [number, number, number]) => Buffer.from(parts.join(':')).toString('base64url');
