// POST /v1/users/{userId}/token: a user token for that user, asked by the user themself (through
// the proxy, or with a token still valid) or by the admin. The upload page uses one to open its
// WebSocket, where a browser cannot add x-userid.
import type { FastifyPluginAsync } from 'fastify';
import { isUuid } from '../../domain/ids.ts';
import type { UserTokens } from '../../infra/user-tokens.ts';
import { requireSelfOrAdmin } from './access.ts';
import { badRequest, HttpError } from './errors.ts';
import { json, ms, obj, params, uuid } from './api-schemas.ts';

export function userTokenRoutes(deps: { tokens: UserTokens | undefined }): FastifyPluginAsync {
  return async (app) => {
    const schema = {
      summary: 'A user token (JWT) for that user: for the WebSocket, where a browser cannot send x-userid',
      params: params({ userId: uuid }),
      response: { 201: json('The token', obj({ userId: uuid, token: { type: 'string' }, expiresAt: ms('Expires') })) },
    };
    app.post<{ Params: { userId: string } }>('/:userId/token', { schema }, async (req, reply) => {
      if (!isUuid(req.params.userId)) throw badRequest('userId', 'must be a UUID');
      const userId = req.params.userId.toLowerCase();
      if (!deps.tokens) throw new HttpError(503, 'user tokens are not enabled here (USER_TOKEN_SECRET)');
      requireSelfOrAdmin(req, userId);
      const { token, expiresAt } = await deps.tokens.issue(userId);
      return reply.status(201).header('cache-control', 'no-store').send({ userId, token, expiresAt });
    });
  };
}
