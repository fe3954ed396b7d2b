// Who may call which route. Routes are registered in groups, each a fastify plugin whose onRequest
// hook checks its kind of caller, so the check belongs to the route itself: whatever spelling of a
// URL reaches a handler (percent-encoded, absolute-form, …) went through its group's hook. The
// rule for "who is the caller" is infra/caller.ts, shared with the fanout.
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { bearerOf, CallerRefused, isAdminCredential, looksLikeJwt, proxiedUser, userOf } from '../../infra/caller.ts';
import type { StationKeys } from '../../infra/stations.ts';
import type { UserTokens } from '../../infra/user-tokens.ts';

/**
 * public: anyone. station: a capture station's key. user: a user named by the proxy's x-userid
 * and/or a user token, or the admin (who may act for the user named in x-userid). admin: the
 * admin token.
 */
export type Access = 'public' | 'station' | 'user' | 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Set on every route by its group; the route table and its tests read it. */
    access?: Access;
    /** The route reads its body as a stream with its own idle rule (ingest streams, upload chunks). */
    streamedBody?: 'ingest' | 'upload';
  }
  interface FastifyRequest {
    /** The station whose key the request carries (station routes). */
    station?: string;
    /** The user the request is for (user routes); undefined only for the admin acting for nobody. */
    userId?: string;
    /** The request carries the admin token. */
    admin?: boolean;
  }
}

export interface AccessDeps {
  adminToken: string | undefined;
  tokens: UserTokens | undefined;
  stations: StationKeys;
}

export interface RouteInfo {
  method: string;
  url: string;
  access: Access;
}

async function stationOf(req: FastifyRequest, deps: AccessDeps): Promise<void> {
  const key = bearerOf(req.headers.authorization);
  if (!key) throw new CallerRefused(401, 'authorization', 'a station key is required (Authorization: Bearer <key>)');
  const station = await deps.stations.verify(key);
  if (!station) throw new CallerRefused(401, 'authorization', 'unknown station key');
  req.station = station;
}

async function adminOf(req: FastifyRequest, deps: AccessDeps): Promise<void> {
  if (!isAdminCredential(bearerOf(req.headers.authorization), deps.adminToken)) {
    throw new CallerRefused(401, 'authorization', 'the admin token is required');
  }
  req.admin = true;
}

async function userOfRequest(req: FastifyRequest, deps: AccessDeps): Promise<void> {
  // A CORS preflight carries no credentials (browsers never send them); it answers only what the
  // route allows, never data.
  if (req.method === 'OPTIONS') return;
  const proxied = proxiedUser(req.headers['x-userid']);
  const credential = bearerOf(req.headers.authorization);
  if (req.headers.authorization !== undefined && credential === undefined) {
    throw new CallerRefused(401, 'authorization', 'must be "Bearer <token>"');
  }
  if (isAdminCredential(credential, deps.adminToken)) {
    req.admin = true;
    req.userId = proxied;
    return;
  }
  if (credential !== undefined && !looksLikeJwt(credential))
    throw new CallerRefused(401, 'authorization', 'not a user token (nor the admin token)');
  req.userId = await userOf(deps.tokens, proxied, credential);
  if (req.userId === undefined) throw new CallerRefused(400, 'x-userid', 'required (or Authorization: Bearer <user token>)');
}

const CHECKS: Record<Exclude<Access, 'public'>, (req: FastifyRequest, deps: AccessDeps) => Promise<void>> = {
  station: stationOf,
  admin: adminOf,
  user: userOfRequest,
};

/** The user a user route is for; the admin must name one in x-userid where a route needs one. */
export function requireUser(req: FastifyRequest): string {
  if (req.userId === undefined) throw new CallerRefused(400, 'x-userid', 'required: the admin acts for the user named here');
  return req.userId;
}

/** For a user's own things named in the path: that user, or the admin. */
export function requireSelfOrAdmin(req: FastifyRequest, userId: string, field = 'userId'): void {
  if (!req.admin && req.userId !== userId) throw new CallerRefused(403, field, 'only that user or the admin may do this');
}

/**
 * Registers `routes` behind the check of `access`. Every route registered inside is tagged with
 * it (config.access), and `table` gets a row per route, so tests cover every route by default.
 */
export function guarded(access: Access, deps: AccessDeps, table: RouteInfo[], routes: FastifyPluginAsync): FastifyPluginAsync {
  return async (scope: FastifyInstance) => {
    scope.addHook('onRoute', (route) => {
      route.config = { ...(route.config as object), access };
      for (const method of [route.method].flat()) table.push({ method, url: route.url, access });
    });
    if (access !== 'public') {
      const check = CHECKS[access];
      scope.addHook('onRequest', async (req) => check(req, deps));
    }
    await scope.register(routes);
  };
}
