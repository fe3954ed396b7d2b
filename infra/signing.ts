// Secrets derived from SIGNING_SECRET, and what is signed with them: webhook bodies (the header
// receivers check, in the style payment and code-hosting services use) and one-click unsubscribe
// links. Nothing derived is stored: each is computed again from the secret and its subject.
import { createHmac, timingSafeEqual } from 'node:crypto';

const hmac = (key: string | Buffer, text: string) => createHmac('sha256', key).update(text).digest();

/** The secret a webhook's receiver checks signatures with: one per alert or encode job. */
export const webhookSecret = (signingSecret: string, subject: string): string =>
  `whsec_${hmac(signingSecret, `webhook:${subject}`).toString('base64url')}`;

/** The header value for a webhook body sent at `unixSeconds`: `t=<time>,v1=<hex HMAC-SHA256 of "<time>.<body>">`. */
export function webhookSignature(secret: string, body: string, unixSeconds: number): string {
  return `t=${unixSeconds},v1=${hmac(secret, `${unixSeconds}.${body}`).toString('hex')}`;
}

/** Checks a signature header as a receiver would (within `toleranceSeconds` of `now`). */
export function verifyWebhookSignature(secret: string, body: string, header: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  const t = Number(/(?:^|,)t=(\d+)/.exec(header)?.[1]);
  const v1 = /(?:^|,)v1=([0-9a-f]{64})/.exec(header)?.[1];
  if (!Number.isSafeInteger(t) || !v1 || Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  return timingSafeEqual(Buffer.from(v1, 'hex'), hmac(secret, `${t}.${body}`));
}

/** A token that lets whoever holds it turn off e-mail for one alert (the link in every alert e-mail). */
export function unsubscribeToken(signingSecret: string, userId: string, alertId: string): string {
  const subject = Buffer.from(JSON.stringify([userId, alertId])).toString('base64url');
  return `${subject}.${hmac(signingSecret, `unsubscribe:${subject}`).subarray(0, 18).toString('base64url')}`;
}

/** The user and alert a token names, or undefined when it is not one of ours. */
export function readUnsubscribeToken(signingSecret: string, token: string): { userId: string; alertId: string } | undefined {
  const [subject, sig, extra] = token.split('.');
  if (!subject || !sig || extra !== undefined || subject.length > 200) return undefined;
  const want = hmac(signingSecret, `unsubscribe:${subject}`).subarray(0, 18);
  const got = Buffer.from(sig, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
  try {
    const [userId, alertId] = JSON.parse(Buffer.from(subject, 'base64url').toString('utf8')) as unknown[];
    return typeof userId === 'string' && typeof alertId === 'string' ? { userId, alertId } : undefined;
  } catch {
    return undefined;
  }
}
