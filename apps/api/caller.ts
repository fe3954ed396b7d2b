// Who is asking: the user the trusted proxy in front vouches for (x-userid, as for stream limits),
// or the one a signed user token names (Authorization: Bearer <token>), for clients that cannot
// go through that proxy. Station keys and the admin token are not user tokens.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../../infra/config.ts';
import { bearerOf } from '../../infra/bearer.ts';
import { InvalidUserToken, looksLikeJwt, UserMismatch, userOfToken, type UserTokens } from '../../infra/user-tokens.ts';
import { isAdmin } from './admin.ts';
import { HttpError } from './errors.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type UserOf = (req: FastifyRequest) => Promise<string>;

export function userOf(tokens: UserTokens | undefined): UserOf {
  return async (req) => {
    const header = req.headers['x-userid'];
    const missing = header === undefined || header === '';
    if (!missing && (typeof header !== 'string' || !UUID.test(header))) throw new HttpError(400, 'x-userid: must be a UUID', 'x-userid');
    const proxied = missing ? undefined : (header as string).toLowerCase();
    const credential = bearerOf(req.headers.authorization);
    if (credential === undefined || !looksLikeJwt(credential)) {
      if (proxied === undefined) throw new HttpError(400, 'x-userid: required (or Authorization: Bearer <user token>)', 'x-userid');
      return proxied;
    }
    return userOfToken(tokens, credential, proxied).catch((err) => {
      if (err instanceof UserMismatch) throw new HttpError(401, 'x-userid: names another user than the token', 'x-userid');
      throw err instanceof InvalidUserToken ? new HttpError(401, `authorization: ${err.message}`, 'authorization') : err;
    });
  };
}

/**
 * POST /v1/users/{userId}/token: a user token for that user, asked by the user themself (through
 * the proxy, or with a token still valid) or by the admin. The upload page uses one to open its
 * WebSocket, where a browser cannot add x-userid.
 */
export function userTokenRoutes(app: FastifyInstance, deps: { config: Config; tokens: UserTokens | undefined; userOf: UserOf }): void {
  app.post<{ Params: { userId: string } }>('/v1/users/:userId/token', async (req, reply) => {
    const userId = req.params.userId;
    if (!UUID.test(userId)) throw new HttpError(400, 'userId: must be a UUID', 'userId');
    if (!deps.tokens) throw new HttpError(503, 'user tokens are not enabled here (USER_TOKEN_SECRET)');
    if (!isAdmin(req, deps.config.adminToken) && (await deps.userOf(req)) !== userId.toLowerCase()) {
      throw new HttpError(403, 'userId: a token is only for that user, or from the admin', 'userId');
    }
    const { token, expiresAt } = await deps.tokens.issue(userId.toLowerCase());
    return reply.status(201).header('cache-control', 'no-store').send({ userId: userId.toLowerCase(), token, expiresAt });
  });
}
