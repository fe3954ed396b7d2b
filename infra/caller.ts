// Who is asking: one rule for every api route and the fanout. Credentials travel as
// `Authorization: Bearer <credential>` — a capture station's key, the admin token, or a user token
// (a JWT) — and the trusted proxy in front names users in x-userid. A token and an x-userid that
// name different users are refused; a credential that is presented is never silently ignored.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isUuid } from '../domain/ids.ts';
import { InvalidUserToken, type UserTokens } from './user-tokens.ts';

/** A request refused for who it says it is: the status and the header (or parameter) at fault. */
export class CallerRefused extends Error {
  constructor(
    readonly statusCode: 400 | 401 | 403,
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

/** The credential of a Bearer authorization header, or undefined when there is none. */
export function bearerOf(authorization: unknown): string | undefined {
  return typeof authorization === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)?.[1] : undefined;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** True when the credential is the admin token; with no admin token configured, nobody is admin. */
export function isAdminCredential(credential: string | undefined, adminToken: string | undefined): boolean {
  return !!adminToken && credential !== undefined && timingSafeEqual(digest(credential), digest(adminToken));
}

/** True for something shaped like a JWT (three base64url parts), as opposed to a station or admin key. */
export const looksLikeJwt = (s: string) => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(s);

/** The user the trusted proxy names in x-userid (lower case); undefined when it names none. */
export function proxiedUser(header: unknown): string | undefined {
  if (header === undefined || header === '') return undefined;
  if (!isUuid(header)) throw new CallerRefused(400, 'x-userid', 'must be a UUID');
  return header.toLowerCase();
}

/**
 * The user a request names: by a user token, by the proxy's x-userid, or by both when they agree.
 * Undefined when it names none. `tokenField` is where the token came from (the fanout takes it
 * from `?token=` too).
 */
export async function userOf(
  tokens: UserTokens | undefined,
  proxied: string | undefined,
  token: string | undefined,
  tokenField = 'authorization',
): Promise<string | undefined> {
  if (token === undefined) return proxied;
  if (!tokens) throw new CallerRefused(401, tokenField, 'user tokens are not enabled here (USER_TOKEN_SECRET)');
  let user: string;
  try {
    user = await tokens.verify(token);
  } catch (err) {
    if (err instanceof InvalidUserToken) throw new CallerRefused(401, tokenField, err.message);
    throw err;
  }
  if (proxied !== undefined && proxied !== user) throw new CallerRefused(401, 'x-userid', 'names another user than the token');
  return user;
}
