// A user's e-mail and webhook deliveries (their alerts' and encode jobs'), each with its attempts:
// GET /v1/deliveries?alertId=|jobId=&after=&limit=, GET /v1/deliveries/{id}, and
// POST /v1/deliveries/{id}/redeliver, which sends one again as a new series of attempts (a failed
// one, an interrupted one, or one that arrived and is wanted again). Someone else's is a 404.
import type { FastifyPluginAsync } from 'fastify';
import { isUuid } from '../../domain/ids.ts';
import type { Config } from '../../infra/config.ts';
import { deliveryOf, listDeliveries, redeliver } from '../../infra/deliveries.ts';
import type { Db } from '../../projections/database.ts';
import { requireUser } from './access.ts';
import { badRequest, HttpError } from './errors.ts';
import { json, nullableString, obj, params, ref } from './api-schemas.ts';

const MAX_LIMIT = 100;
const ID = '^[1-9][0-9]{0,15}$';

export function deliveryRoutes(deps: { db: Db; config: Config }): FastifyPluginAsync {
  const { db, config } = deps;
  const notFound = (id: string) => new HttpError(404, `id: no delivery ${id}`, 'id');
  const idOf = (text: string) => {
    const id = Number(text);
    if (!new RegExp(ID).test(text) || !Number.isSafeInteger(id)) throw notFound(text);
    return id;
  };
  const uuidOf = (field: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    if (!isUuid(text)) throw badRequest(field, 'must be a UUID');
    return text.toLowerCase();
  };

  return async (app) => {
    app.get<{ Querystring: { alertId?: string; jobId?: string; after?: string; limit?: number } }>(
      '/',
      {
        schema: {
          summary: 'My deliveries (e-mails and webhooks of my alerts and encodes), with their attempts',
          response: { 200: json('A page', obj({ items: { type: 'array', items: ref('Delivery') }, next: nullableString })) },
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              alertId: { type: 'string', maxLength: 36 },
              jobId: { type: 'string', maxLength: 36 },
              after: { type: 'string', pattern: ID },
              limit: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: 20 },
            },
          },
        },
      },
      async (req) => {
        const userId = requireUser(req);
        const filter = { alertId: uuidOf('alertId', req.query.alertId), jobId: uuidOf('jobId', req.query.jobId) };
        const after = req.query.after === undefined ? undefined : Number(req.query.after);
        const page = await listDeliveries(db, userId, filter, after, req.query.limit ?? 20);
        return { items: page.items, next: page.next === null ? null : String(page.next) };
      },
    );

    const id = params({ id: { type: 'string', description: 'A delivery id (a positive integer)' } });
    const oneDoc = { summary: 'One of my deliveries', params: id, response: { 200: json('The delivery', ref('Delivery')) } };
    app.get<{ Params: { id: string } }>('/:id', { schema: oneDoc }, async (req) => {
      const delivery = await deliveryOf(db, requireUser(req), idOf(req.params.id));
      if (!delivery) throw notFound(req.params.id);
      return delivery;
    });

    const redeliverDoc = {
      summary: 'Send a delivery again, as a new series of attempts',
      params: id,
      response: { 202: json('Pending again', ref('Delivery')) },
    };
    app.post<{ Params: { id: string } }>('/:id/redeliver', { schema: redeliverDoc }, async (req, reply) => {
      const userId = requireUser(req);
      const result = await redeliver(db, userId, idOf(req.params.id), Date.now(), config.deliveryRetryWindowMs);
      if (result === 'not_found') throw notFound(req.params.id);
      if (result === 'in_flight') throw new HttpError(409, `id: delivery ${req.params.id} is being sent already`, 'id');
      // Pending again: the outbox's trigger wakes the notifiers.
      return reply.status(202).send(result);
    });
  };
}
