// Admin operations need `Authorization: Bearer <ADMIN_TOKEN>`; with no token configured, nobody is admin.
import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { bearerOf } from '../../infra/bearer.ts';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function isAdmin(req: FastifyRequest, adminToken: string | undefined): boolean {
  if (!adminToken) return false;
  const credential = bearerOf(req.headers.authorization);
  return credential !== undefined && timingSafeEqual(digest(credential), digest(adminToken));
}
