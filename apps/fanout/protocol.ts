// The live WebSocket protocol (docs/live-protocol.md is its description for client authors).
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';

/** Closed because it could not keep up: resubscribe with `since` = the last position received. */
export const CLOSE_SLOW_CONSUMER = 4008;
export const CLOSE_SLOW_REASON = 'slow consumer: reconnect and resubscribe with since=<last position>';
/** The server is restarting: reconnect and resubscribe with `since`. */
export const CLOSE_RESTART = 1012;
export const MAX_SUBSCRIPTIONS = 256;

export type ClientMessage =
  | { op: 'subscribe'; channel: string; since?: string }
  | { op: 'unsubscribe'; channel: string };

export type ErrorCode = 'bad_request' | 'invalid_channel' | 'invalid_position' | 'too_many_subscriptions' | 'unavailable' | 'forbidden';

export function captionMessage(d: Pick<CaptionFragmentReceived, 'channel' | 'station' | 'seq' | 'text' | 'start' | 'end' | 'mode' | 'lang'>, position: string): string {
  return JSON.stringify({
    type: 'caption',
    channel: d.channel,
    position,
    station: d.station,
    seq: d.seq,
    text: d.text,
    start: d.start,
    end: d.end,
    mode: d.mode,
    lang: d.lang,
  });
}

/** One of a user's own events (on channel "user:<id>"): stream activations, heartbeats, and so on. */
export const userEventMessage = (channel: string, position: string, event: string, data: unknown) =>
  JSON.stringify({ type: 'event', channel, position, event, data });

export const subscribedMessage = (channel: string, position: string, recovered: boolean) =>
  JSON.stringify({ type: 'subscribed', channel, position, recovered });

export const unsubscribedMessage = (channel: string) => JSON.stringify({ type: 'unsubscribed', channel });

export const errorMessage = (code: ErrorCode, message: string, channel?: string) =>
  JSON.stringify({ type: 'error', code, message, ...(channel ? { channel } : {}) });

/** Parses a client frame; a string is the error to send back. */
export function parseClientMessage(raw: string): ClientMessage | string {
  let m: unknown;
  try {
    m = JSON.parse(raw);
  } catch {
    return 'message is not valid JSON';
  }
  if (typeof m !== 'object' || m === null) return 'message must be a JSON object';
  const { op, channel, since } = m as Record<string, unknown>;
  if (op !== 'subscribe' && op !== 'unsubscribe') return 'op must be "subscribe" or "unsubscribe"';
  if (typeof channel !== 'string') return 'channel must be a string';
  if (op === 'subscribe' && since !== undefined && since !== null && typeof since !== 'string') return 'since must be a position string';
  return op === 'subscribe' ? { op, channel, ...(typeof since === 'string' ? { since } : {}) } : { op, channel };
}
