export const CHANNEL_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const CHANNEL_ID_RULE = 'must match [a-z0-9][a-z0-9._-]{0,63}';

export function isChannelId(value: unknown): value is string {
  return typeof value === 'string' && CHANNEL_ID.test(value);
}
