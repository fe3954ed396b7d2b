// Signed user tokens: a JWT (HS256, jose) whose subject is the user id. Where the trusted proxy in
// front cannot set x-userid — a browser's WebSocket, a client talking to castlog directly — the
// token says who the user is. Every api and fanout process shares USER_TOKEN_SECRET.
import { SignJWT, jwtVerify, errors } from 'jose';
import { isUuid } from '../domain/ids.ts';

const ISSUER = 'castlog';
const ALG = 'HS256';

/** Why a token was refused, in words a client can act on. */
export class InvalidUserToken extends Error {}

export class UserTokens {
  private readonly key: Uint8Array;

  constructor(
    secret: string,
    readonly ttlSeconds: number,
  ) {
    // HS256 wants at least as many key bytes as the hash has.
    if (Buffer.byteLength(secret) < 32) throw new Error('USER_TOKEN_SECRET must be at least 32 bytes');
    this.key = new TextEncoder().encode(secret);
  }

  async issue(userId: string, now = Date.now()): Promise<{ token: string; expiresAt: number }> {
    const iat = Math.floor(now / 1000);
    const exp = iat + this.ttlSeconds;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: ALG })
      .setSubject(userId)
      .setIssuer(ISSUER)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(this.key);
    return { token, expiresAt: exp * 1000 };
  }

  /** The user a token names; InvalidUserToken when it is not one of ours, altered or expired. */
  async verify(token: string): Promise<string> {
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: ISSUER, algorithms: [ALG] });
      if (!isUuid(payload.sub)) throw new InvalidUserToken('the token names no user');
      return payload.sub.toLowerCase();
    } catch (err) {
      if (err instanceof InvalidUserToken) throw err;
      if (err instanceof errors.JWTExpired) throw new InvalidUserToken('the token has expired');
      throw new InvalidUserToken('not a valid user token');
    }
  }
}
