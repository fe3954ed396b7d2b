// Concurrent stream limits, with canWatch's routes so its clients work unchanged:
// GET /users/newId, GET /streams/newId, PATCH|POST|PUT /streams/{id}/activate|deactivate|heartbeat
// (user in x-userid), plus per-user limits and the user's active streams.
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../../domain/decider.ts';
import { activeStreams, limitOf, viewer, viewerStream, type ViewerCommand } from '../../domain/streams/viewer.ts';
import { streamIds, streamIdStream } from '../../domain/streams/stream-ids.ts';
import type { Config } from '../../infra/config.ts';
import type { Db } from '../../infra/db.ts';
import { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import { EventStoreUnavailable, type EventStore } from '../../infra/eventstore/port.ts';
import { prom, LATENCY_BUCKETS, type Registry } from '../../infra/metrics.ts';
import { HttpError } from './errors.ts';
import { isAdmin } from './admin.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SOURCE = '/api/streams';

const ko = (status: number, error: string, extra: Record<string, unknown> = {}) => new HttpError(status, error, undefined, { status: 'ko', ...extra });

function uuidOf(value: unknown, field: string): string {
  if (value === undefined || value === '') throw ko(400, `${field}: required`, { field });
  if (typeof value !== 'string' || !UUID.test(value)) throw ko(400, `${field}: must be a UUID`, { field });
  return value.toLowerCase();
}

/** Maps what the store and the decider say to HTTP: unreachable is a 503, never a guess. */
async function decided<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof EventStoreUnavailable) throw ko(503, 'Service Unavailable');
    if (err instanceof DomainError) {
      throw ko({ not_found: 404, conflict: 409, invalid: 400 }[err.kind], err.message);
    }
    throw err;
  }
}

export function streamRoutes(app: FastifyInstance, deps: { store: EventStore; db: Db; config: Config; metrics: Registry }): void {
  const { config, db } = deps;
  const handler = new CommandHandler(deps.store);
  const decisions = new prom.Histogram({ name: 'castlog_stream_decision_seconds', help: 'Time to decide and append a stream command', labelNames: ['command', 'outcome'], buckets: LATENCY_BUCKETS, registers: [deps.metrics] });
  // Issued stream ids never change, so once seen they need no second read.
  const knownStreamIds = new Set<string>();

  async function requireStreamId(streamId: string): Promise<void> {
    if (knownStreamIds.has(streamId)) return;
    const { state } = await deps.store.load(streamIdStream(streamId), streamIds.initialState, streamIds.evolve);
    if (!state.issued) throw new DomainError('not_found', `unknown stream id ${streamId}`);
    knownStreamIds.add(streamId);
  }

  const viewerCommand = (userId: string, make: () => ViewerCommand) =>
    handler.handle(viewer, viewerStream(userId), make, { key: userId, source: SOURCE });

  app.get('/users/newId', async () => {
    const userId = randomUUID();
    await decided(viewerCommand(userId, () => ({ type: 'IssueUserId', userId, now: Date.now() })));
    return { userId };
  });

  app.get('/streams/newId', async () => {
    const streamId = randomUUID();
    await decided(handler.handle(streamIds, streamIdStream(streamId), { type: 'IssueStreamId', streamId, now: Date.now() }, { key: streamId, source: SOURCE }));
    knownStreamIds.add(streamId);
    return { streamId };
  });

  type Action = 'activate' | 'deactivate' | 'heartbeat';
  const act = (action: Action) => async (req: FastifyRequest<{ Params: { streamId: string } }>, reply: FastifyReply) => {
    const t0 = performance.now();
    const userId = uuidOf(req.headers['x-userid'], 'x-userid');
    const streamId = uuidOf(req.params.streamId, 'streamId');
    const make = (): ViewerCommand => {
      const now = Date.now();
      if (action === 'activate') return { type: 'Activate', userId, streamId, now, ttlMs: config.streamLeaseTtlMs, defaultLimit: config.streamLimit };
      if (action === 'heartbeat') return { type: 'Heartbeat', userId, streamId, now, ttlMs: config.streamLeaseTtlMs };
      return { type: 'Deactivate', userId, streamId, now };
    };
    let outcome = 'error';
    try {
      const { events, state } = await decided(requireStreamId(streamId).then(() => viewerCommand(userId, make)));
      const now = Date.now();
      const active = activeStreams(state, now);
      const limit = limitOf(state, config.streamLimit);
      const rejected = events.find((e) => e.type === 'ActivationRejected');
      outcome = rejected ? 'rejected' : 'ok';
      if (rejected) return reply.status(409).send({ status: 'ko', error: 'too many streams', limit, active });
      return { status: 'ok', active, limit };
    } finally {
      decisions.observe({ command: action, outcome }, (performance.now() - t0) / 1000);
    }
  };

  for (const action of ['activate', 'deactivate', 'heartbeat'] as const) {
    const url = `/streams/:streamId/${action}`;
    app.route({ method: ['PATCH', 'POST', 'PUT'], url, handler: act(action) });
    app.route({
      method: ['GET', 'DELETE', 'HEAD', 'OPTIONS'],
      url,
      handler: async (_req, reply) => reply.status(405).header('allow', 'PATCH, POST, PUT').send({ status: 'ko', error: `method not allowed; use PATCH (or POST, PUT)` }),
    });
  }

  app.put<{ Params: { userId: string }; Body: { limit: number } }>(
    '/v1/admin/users/:userId/limit',
    { schema: { body: { type: 'object', required: ['limit'], additionalProperties: false, properties: { limit: { type: 'integer', minimum: 0, maximum: 1000 } } } } },
    async (req) => {
      if (!isAdmin(req, config.adminToken)) throw new HttpError(401, 'authorization: the admin token is required', 'authorization');
      const userId = uuidOf(req.params.userId, 'userId');
      const limit = (req.body as { limit: number }).limit;
      const { state } = await decided(viewerCommand(userId, () => ({ type: 'SetLimit', userId, limit, now: Date.now() })));
      return { userId, limit: state.limit };
    },
  );

  app.get<{ Params: { userId: string } }>('/v1/users/:userId/streams', async (req) => {
    const userId = uuidOf(req.params.userId, 'userId');
    const caller = req.headers['x-userid'];
    if (!isAdmin(req, config.adminToken) && (typeof caller !== 'string' || caller.toLowerCase() !== userId)) {
      throw new HttpError(403, 'x-userid: only the user themself or an admin may see their streams', 'x-userid');
    }
    const viewerRow = await db.selectFrom('viewers').selectAll().where('user_id', '=', userId).executeTakeFirst();
    if (!viewerRow) throw new HttpError(404, `userId: unknown user id ${userId}`, 'userId');
    const now = Date.now();
    const leases = await db.selectFrom('viewer_leases').selectAll().where('user_id', '=', userId).where('expires_at_ms', '>', now).orderBy('activated_at_ms').execute();
    return {
      userId,
      limit: viewerRow.stream_limit ?? config.streamLimit,
      active: leases.map((l) => ({ streamId: l.stream_id, activatedAt: l.activated_at_ms, expiresAt: l.expires_at_ms })),
    };
  });
}
