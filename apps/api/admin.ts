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

export function adminRoutes(deps: { db: Db; log: EventLog; config: Config; store: EventStore }): FastifyPluginAsync {
  const { db, log } = deps;
  const handler = new CommandHandler(deps.store);
  return async (app) => {
    app.get('/projections', async () => ({ projections: await projectionStatus(db, log) }));

    app.post<{ Params: { name: string } }>('/projections/:name/rebuild', async (req, reply) => {
      try {
        const version = await rebuild(db, req.params.name);
        return reply.status(202).send({ name: req.params.name, building: version });
      } catch (err) {
        if (err instanceof UnknownProjection) throw new HttpError(404, `name: ${err.message}`, 'name');
        if (err instanceof RebuildError) throw new HttpError(409, err.message);
        throw err;
      }
    });

    app.post<{ Params: { name: string } }>('/projections/:name/verify', async (req) => {
      if (req.params.name !== 'captions') throw new HttpError(404, 'name: verify knows the captions projection', 'name');
      return verifyCaptions(db, log);
    });

    app.put<{ Params: { userId: string }; Body: { limit: number } }>(
      '/users/:userId/limit',
      {
        schema: {
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
