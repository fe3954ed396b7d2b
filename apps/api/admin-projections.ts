// Projection admin over HTTP (admin token): status, rebuild, verify. The same operations as the CLI.
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../infra/config.ts';
import type { Db } from '../../infra/db.ts';
import type { EventLog } from '../../infra/kafka.ts';
import { RebuildError } from '../../projections/versions.ts';
import { projectionStatus, rebuild, UnknownProjection, verifyCaptions } from '../projection-admin.ts';
import { isAdmin } from './admin.ts';
import { HttpError } from './errors.ts';

export function projectionAdminRoutes(app: FastifyInstance, deps: { db: Db; log: EventLog; config: Config }): void {
  const { db, log, config } = deps;
  app.addHook('onRequest', async (req) => {
    if (req.url.startsWith('/v1/admin/projections') && !isAdmin(req, config.adminToken)) {
      throw new HttpError(401, 'authorization: the admin token is required', 'authorization');
    }
  });

  app.get('/v1/admin/projections', async () => ({ projections: await projectionStatus(db, log) }));

  app.post<{ Params: { name: string } }>('/v1/admin/projections/:name/rebuild', async (req, reply) => {
    try {
      const version = await rebuild(db, req.params.name);
      return reply.status(202).send({ name: req.params.name, building: version });
    } catch (err) {
      if (err instanceof UnknownProjection) throw new HttpError(404, `name: ${err.message}`, 'name');
      if (err instanceof RebuildError) throw new HttpError(409, err.message);
      throw err;
    }
  });

  app.post<{ Params: { name: string } }>('/v1/admin/projections/:name/verify', async (req) => {
    if (req.params.name !== 'captions') throw new HttpError(404, 'name: verify knows the captions projection', 'name');
    return verifyCaptions(db, log);
  });
}
