// Signed user tokens: a JWT (HS256, jose) whose subject is the user id. Where the trusted proxy in
// front cannot set x-userid — a browser's WebSocket, a client talking to castlog directly — the
// token says who the user is. Every api and fanout process shares USER_TOKEN_SECRET.
import { SignJWT, jwtVerify, errors } from 'jose';

const ISSUER = 'castlog';
const ALG = 'HS256';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Why a token was refused, in words a client can act on. */
export class InvalidUserToken extends Error {}

/** A token and an x-userid from the proxy that name two different users. */
export class UserMismatch extends InvalidUserToken {
  constructor() {
    super('x-userid names another user than the token');
  }
}

export class UserTokens {
  private readonly key: Uint8Array;

  constructor(secret: string, readonly ttlSeconds: number) {
    // HS256 wants at least as many key bytes as the hash has.
    if (Buffer.byteLength(secret) < 32) throw new Error('USER_TOKEN_SECRET must be at least 32 bytes');
    this.key = new TextEncoder().encode(secret);
  }

  async issue(userId: string, now = Date.now()): Promise<{ token: string; expiresAt: number }> {
    const iat = Math.floor(now / 1000);
    const exp = iat + this.ttlSeconds;
    const token = await new SignJWT({}).setProtectedHeader({ alg: ALG }).setSubject(userId).setIssuer(ISSUER).setIssuedAt(iat).setExpirationTime(exp).sign(this.key);
    return { token, expiresAt: exp * 1000 };
  }

  /** The user a token names; InvalidUserToken when it is not one of ours, altered or expired. */
  async verify(token: string): Promise<string> {
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: ISSUER, algorithms: [ALG] });
      if (typeof payload.sub !== 'string' || !UUID.test(payload.sub)) throw new InvalidUserToken('the token names no user');
      return payload.sub;
    } catch (err) {
      if (err instanceof InvalidUserToken) throw err;
      if (err instanceof errors.JWTExpired) throw new InvalidUserToken('the token has expired');
      throw new InvalidUserToken('not a valid user token');
    }
  }
}

/** True for something shaped like a JWT (three base64url parts), as opposed to a station or admin key. */
export const looksLikeJwt = (s: string) => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(s);

/**
 * The user a token names, for the api and the fanout alike: refused when tokens are not enabled
 * here, and when an x-userid from the proxy (lower case) names someone else.
 */
export async function userOfToken(tokens: UserTokens | undefined, token: string, proxied?: string): Promise<string> {
  if (!tokens) throw new InvalidUserToken('user tokens are not enabled here (USER_TOKEN_SECRET)');
  const userId = await tokens.verify(token);
  if (proxied && proxied !== userId) throw new UserMismatch();
  return userId;
}
