// Admin operations (the admin token, checked by the group's hook in access.ts): projection
// status, rebuild and verify — the same operations as the CLI — and per-user stream limits.
import type { FastifyPluginAsync } from 'fastify';
import { isUuid } from '../../domain/ids.ts';
import { viewer, viewerStream, type ViewerCommand } from '../../domain/streams/viewer.ts';
import type { Config } from '../../infra/config.ts';
import type { Db } from '../../projections/database.ts';
import { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import type { EventLog } from '../../infra/kafka/index.ts';
import { RebuildError } from '../../projections/versions.ts';
import { projectionStatus, rebuild, UnknownProjection, verifyCaptions } from '../projection-admin.ts';
import { badRequest, HttpError } from './errors.ts';
import { json, nullableInteger, obj, params, uuid } from './api-schemas.ts';

export function adminRoutes(deps: { db: Db; log: EventLog; config: Config; store: EventStore }): FastifyPluginAsync {
  const { db, log } = deps;
  const handler = new CommandHandler(deps.store);
  return async (app) => {
    const status = obj({
      name: { type: 'string' },
      current: { type: 'integer' },
      building: nullableInteger,
      versions: { type: 'array', items: { type: 'object', required: ['version', 'role', 'lag', 'pastLogEnd', 'progress', 'runners'] } },
    });
    const projections = {
      200: json('Every projection, its versions, their lag and progress', obj({ projections: { type: 'array', items: status } })),
    };
    const name = params({ name: { type: 'string' } });
    app.get('/projections', { schema: { summary: 'Projection status', response: projections } }, async () => ({
      projections: await projectionStatus(db, log),
    }));

    const rebuildSchema = {
      summary: 'Rebuild a projection as a new version, served once caught up',
      params: name,
      response: { 202: json('Building', obj({ name: { type: 'string' }, building: { type: 'integer' } })) },
    };
    app.post<{ Params: { name: string } }>('/projections/:name/rebuild', { schema: rebuildSchema }, async (req, reply) => {
      try {
        const version = await rebuild(db, req.params.name);
        return reply.status(202).send({ name: req.params.name, building: version });
      } catch (err) {
        if (err instanceof UnknownProjection) throw new HttpError(404, `name: ${err.message}`, 'name');
        if (err instanceof RebuildError) throw new HttpError(409, err.message);
        throw err;
      }
    });

    const difference = obj({
      channel: { type: 'string' },
      hour: { type: 'string' },
      inLog: { type: 'integer' },
      inModel: { type: 'integer' },
    });
    const verifySchema = {
      summary: 'Compare the captions read model with the log, hour by hour',
      params: name,
      response: {
        200: json(
          'The comparison',
          obj({ ok: { type: 'boolean' }, checked: { type: 'integer' }, differences: { type: 'array', items: difference } }),
        ),
      },
    };
    app.post<{ Params: { name: string } }>('/projections/:name/verify', { schema: verifySchema }, async (req) => {
      if (req.params.name !== 'captions') throw new HttpError(404, 'name: verify knows the captions projection', 'name');
      return verifyCaptions(db, log);
    });

    app.put<{ Params: { userId: string }; Body: { limit: number } }>(
      '/users/:userId/limit',
      {
        schema: {
          summary: "Set a user's concurrent stream limit",
          params: params({ userId: uuid }),
          response: { 200: json('The limit now', obj({ userId: uuid, limit: { type: 'integer' } })) },
          body: {
            type: 'object',
            required: ['limit'],
            additionalProperties: false,
            properties: { limit: { type: 'integer', minimum: 0, maximum: 1000 } },
          },
        },
      },
      async (req) => {
        if (!isUuid(req.params.userId)) throw badRequest('userId', 'must be a UUID');
        const userId = req.params.userId.toLowerCase();
        const { limit } = req.body;
        const { state } = await handler.handle(
          viewer,
          viewerStream(userId),
          (): ViewerCommand => ({ type: 'SetLimit', userId, limit, now: Date.now() }),
          { key: userId, source: '/api/streams' },
        );
        return { userId, limit: state.limit };
      },
    );
  };
}
