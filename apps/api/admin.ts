// Admin operations need `Authorization: Bearer <ADMIN_TOKEN>`; with no token configured, nobody is admin.
import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';

const digest = (s: string) => createHash('sha256').update(s).digest();

export function isAdmin(req: FastifyRequest, adminToken: string | undefined): boolean {
  if (!adminToken) return false;
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return !!m && timingSafeEqual(digest(m[1]!), digest(adminToken));
}
