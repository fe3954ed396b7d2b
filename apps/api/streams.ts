// Concurrent stream limits, with canWatch's routes so its clients work unchanged:
// GET /users/newId, GET /streams/newId (anyone), PATCH|POST|PUT /streams/{id}/activate|deactivate|
// heartbeat (the user: x-userid from the proxy, or a user token), and a user's active streams.
// Errors answer in canWatch's shape (server.ts adds "status": "ko").
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { LRUCache } from 'lru-cache';
import { DomainError } from '../../domain/decider.ts';
import { isUuid } from '../../domain/ids.ts';
import { streamIds, streamIdStream } from '../../domain/streams/stream-ids.ts';
import { activeStreams, limitOf, viewer, viewerStream, type ViewerCommand } from '../../domain/streams/viewer.ts';
import type { Config } from '../../infra/config.ts';
import type { Db } from '../../projections/database.ts';
import { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import { LATENCY_BUCKETS, prom, type Registry } from '../../infra/metrics.ts';
import { runningLeases, viewerOf } from '../../projections/streams/queries.ts';
import { requireSelfOrAdmin, requireUser } from './access.ts';
import { badRequest, HttpError } from './errors.ts';
import { json, ms, obj, params, ref, uuid } from './api-schemas.ts';

const SOURCE = '/api/streams';

function uuidParam(value: string, field: string): string {
  if (!isUuid(value)) throw badRequest(field, 'must be a UUID');
  return value.toLowerCase();
}

interface Deps {
  store: EventStore;
  db: Db;
  config: Config;
  metrics: Registry;
}

/**
 * One command handler per api process (routes and lease sweeper): it queues a stream's commands so
 * they do not fight, and remembers the latest viewers' states (32 MB of them: ~100,000 of a few leases).
 */
const handlers = new WeakMap<EventStore, CommandHandler>();
export const handlerOf = (store: EventStore) => {
  let h = handlers.get(store);
  if (!h) handlers.set(store, (h = new CommandHandler(store, 100, 32 * 1024 * 1024)));
  return h;
};

const viewerCommand = (store: EventStore, userId: string, make: () => ViewerCommand, requires?: { stream: string; missing: () => Error }) =>
  handlerOf(store).handle(viewer, viewerStream(userId), make, { key: userId, source: SOURCE }, requires);

/** Issued stream ids never change, so once seen they need no second read (the most recent 100,000). */
const knownStreamIds = new LRUCache<string, true>({ max: 100_000 });

/** GET /users/newId and GET /streams/newId: anyone may ask for an id; only issued ids are valid. */
export function canWatchIdRoutes(deps: Deps): FastifyPluginAsync {
  const { store } = deps;
  return async (app) => {
    const issued = (name: string) => ({
      summary: `A new ${name}: only ids issued here are accepted`,
      response: { 200: json('The id', obj({ [name]: uuid })) },
    });
    app.get('/users/newId', { schema: issued('userId') }, async () => {
      const userId = randomUUID();
      await viewerCommand(store, userId, () => ({ type: 'IssueUserId', userId, now: Date.now() }));
      return { userId };
    });

    app.get('/streams/newId', { schema: issued('streamId') }, async () => {
      const streamId = randomUUID();
      await handlerOf(store).handle(
        streamIds,
        streamIdStream(streamId),
        { type: 'IssueStreamId', streamId, now: Date.now() },
        { key: streamId, source: SOURCE },
      );
      knownStreamIds.set(streamId, true);
      return { streamId };
    });
  };
}

/** PATCH (or POST, PUT) /streams/{id}/activate | deactivate | heartbeat, for the calling user. */
export function canWatchStreamRoutes(deps: Deps): FastifyPluginAsync {
  const { config, store } = deps;
  const decisions = new prom.Histogram({
    name: 'castlog_stream_decision_seconds',
    help: 'Time to decide and append a stream command',
    labelNames: ['command', 'outcome'],
    buckets: LATENCY_BUCKETS,
    registers: [deps.metrics],
  });

  /** An id not seen yet is checked in the same read as the user's state. */
  const issuedStreamId = (streamId: string) =>
    knownStreamIds.has(streamId)
      ? undefined
      : { stream: streamIdStream(streamId), missing: () => new DomainError('not_found', `streamId: unknown stream id ${streamId}`) };

  type Action = 'activate' | 'deactivate' | 'heartbeat';
  const act = (action: Action) => async (req: FastifyRequest<{ Params: { streamId: string } }>, reply: FastifyReply) => {
    const t0 = performance.now();
    const userId = requireUser(req);
    const streamId = uuidParam(req.params.streamId, 'streamId');
    const make = (): ViewerCommand => {
      const now = Date.now();
      if (action === 'activate')
        return { type: 'Activate', userId, streamId, now, ttlMs: config.streamLeaseTtlMs, defaultLimit: config.streamLimit };
      if (action === 'heartbeat') return { type: 'Heartbeat', userId, streamId, now, ttlMs: config.streamLeaseTtlMs };
      return { type: 'Deactivate', userId, streamId, now };
    };
    let outcome = 'error';
    try {
      const { events, state } = await viewerCommand(store, userId, make, issuedStreamId(streamId));
      knownStreamIds.set(streamId, true);
      const active = activeStreams(state, Date.now());
      const limit = limitOf(state, config.streamLimit);
      const rejected = events.some((e) => e.type === 'ActivationRejected');
      outcome = rejected ? 'rejected' : 'ok';
      if (rejected) return reply.status(409).send({ status: 'ko', error: 'too many streams', limit, active });
      return { status: 'ok', active, limit };
    } finally {
      decisions.observe({ command: action, outcome }, (performance.now() - t0) / 1000);
    }
  };

  return async (app) => {
    for (const action of ['activate', 'deactivate', 'heartbeat'] as const) {
      const url = `/:streamId/${action}`;
      const streamId = params({ streamId: uuid });
      const schema = {
        summary: `${action[0]!.toUpperCase()}${action.slice(1)} a stream of the calling user (canWatch; PATCH, POST and PUT alike)`,
        params: streamId,
        response: {
          200: json(
            'Decided: the active streams and the limit',
            obj({ status: { const: 'ok' }, active: { type: 'array', items: uuid }, limit: { type: 'integer' } }),
          ),
          409: json('Too many streams: the limit is reached', ref('CanWatchError')),
        },
      };
      app.route({ method: ['PATCH', 'POST', 'PUT'], url, handler: act(action), schema });
      const notAllowed = {
        summary: 'Not allowed: use PATCH (or POST, PUT)',
        params: streamId,
        response: { 405: json('Not allowed', ref('CanWatchError')) },
      };
      app.route({
        method: ['GET', 'DELETE'],
        url,
        schema: notAllowed,
        handler: async () => {
          throw new HttpError(405, 'method: not allowed; use PATCH (or POST, PUT)', 'method', {}, { allow: 'PATCH, POST, PUT' });
        },
      });
    }
  };
}

/** GET /v1/users/{userId}/streams: the user's active streams, for that user or the admin. */
export function userStreamRoutes(deps: Deps): FastifyPluginAsync {
  const { db, config } = deps;
  return async (app) => {
    const schema = {
      summary: "A user's active streams and limit (that user or the admin)",
      params: params({ userId: uuid }),
      response: {
        200: json(
          'The streams',
          obj({
            userId: uuid,
            limit: { type: 'integer' },
            active: {
              type: 'array',
              items: obj({ streamId: uuid, activatedAt: ms('Activated'), expiresAt: ms('Expires unless a heartbeat comes') }),
            },
          }),
        ),
      },
    };
    app.get<{ Params: { userId: string } }>('/:userId/streams', { schema }, async (req) => {
      const userId = uuidParam(req.params.userId, 'userId');
      requireSelfOrAdmin(req, userId);
      const viewerRow = await viewerOf(db, userId);
      if (!viewerRow) throw new HttpError(404, `userId: unknown user id ${userId}`, 'userId');
      const now = Date.now();
      const leases = await runningLeases(db, userId, now);
      return {
        userId,
        limit: limitOf({ limit: viewerRow.stream_limit }, config.streamLimit),
        active: leases.map((l) => ({ streamId: l.stream_id, activatedAt: l.activated_at_ms, expiresAt: l.expires_at_ms })),
      };
    });
  };
}
