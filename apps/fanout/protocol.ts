// The live WebSocket protocol (docs/live-protocol.md is its description for client authors).
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';

/** Closed because it could not keep up: resubscribe with `since` = the last position received. */
export const CLOSE_SLOW_CONSUMER = 4008;
export const CLOSE_SLOW_REASON = 'slow consumer: reconnect and resubscribe with since=<last position>';
/** The server is restarting: reconnect and resubscribe with `since`. */
export const CLOSE_RESTART = 1012;
export const MAX_SUBSCRIPTIONS = 256;

export const MAX_REPLAYS = 8;
export const MAX_REPLAY_SPEED = 1000;

export type ClientMessage =
  | { op: 'subscribe'; channel: string; since?: string }
  | { op: 'unsubscribe'; channel: string }
  | { op: 'replay'; channel: string; from: number; to: number; speed: number; id: string }
  | { op: 'stop_replay'; id: string };

export type ErrorCode =
  | 'bad_request' | 'invalid_channel' | 'invalid_position' | 'too_many_subscriptions' | 'too_many_replays' | 'unavailable' | 'forbidden';

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

/** A caption of a replay: the live shape, plus which replay and the time it was originally on air. */
export const replayCaptionMessage = (replay: string, position: string, d: Pick<CaptionFragmentReceived, 'channel' | 'station' | 'seq' | 'text' | 'start' | 'end' | 'mode' | 'lang'>) =>
  JSON.stringify({ ...JSON.parse(captionMessage(d, position)), replay, originalTime: d.start });

export const replayStartedMessage = (replay: string, channel: string, from: number, to: number, speed: number) =>
  JSON.stringify({ type: 'replay_started', replay, channel, from, to, speed });

export const replayEndMessage = (replay: string, channel: string, sent: number, stopped: boolean) =>
  JSON.stringify({ type: 'replay_end', replay, channel, sent, stopped });

/** One of a user's own events (on channel "user:<id>"): stream activations, heartbeats, and so on. */
export const userEventMessage = (channel: string, position: string, event: string, data: unknown) =>
  JSON.stringify({ type: 'event', channel, position, event, data });

export const subscribedMessage = (channel: string, position: string, recovered: boolean) =>
  JSON.stringify({ type: 'subscribed', channel, position, recovered });

export const unsubscribedMessage = (channel: string) => JSON.stringify({ type: 'unsubscribed', channel });

export const errorMessage = (code: ErrorCode, message: string, channel?: string) =>
  JSON.stringify({ type: 'error', code, message, ...(channel ? { channel } : {}) });

/** Milliseconds since the epoch, or an ISO 8601 date. */
function time(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && v !== '') {
    const ms = Date.parse(v);
    if (Number.isFinite(ms)) return ms;
  }
  return undefined;
}

let replayCounter = 0;

/** Parses a client frame; a string is the error to send back. */
export function parseClientMessage(raw: string): ClientMessage | string {
  let m: unknown;
  try {
    m = JSON.parse(raw);
  } catch {
    return 'message is not valid JSON';
  }
  if (typeof m !== 'object' || m === null) return 'message must be a JSON object';
  const { op, channel, since, from, to, speed, id } = m as Record<string, unknown>;
  if (op === 'stop_replay') return typeof id === 'string' ? { op, id } : 'id must be the replay id to stop';
  if (op !== 'subscribe' && op !== 'unsubscribe' && op !== 'replay') return 'op must be "subscribe", "unsubscribe", "replay" or "stop_replay"';
  if (typeof channel !== 'string') return 'channel must be a string';
  if (op === 'replay') {
    const f = time(from);
    const t = time(to);
    if (f === undefined) return 'from must be milliseconds since the epoch or an ISO 8601 date';
    if (t === undefined) return 'to must be milliseconds since the epoch or an ISO 8601 date';
    if (t <= f) return 'to must be after from';
    const sp = speed === undefined ? 1 : speed;
    if (typeof sp !== 'number' || !(sp > 0) || sp > MAX_REPLAY_SPEED) return `speed must be a number above 0 and at most ${MAX_REPLAY_SPEED}`;
    if (id !== undefined && (typeof id !== 'string' || id.length === 0 || id.length > 64)) return 'id must be a string of 1 to 64 characters';
    return { op, channel, from: f, to: t, speed: sp, id: (id as string | undefined) ?? `r${++replayCounter}` };
  }
  if (op === 'subscribe' && since !== undefined && since !== null && typeof since !== 'string') return 'since must be a position string';
  return op === 'subscribe' ? { op, channel, ...(typeof since === 'string' ? { since } : {}) } : { op, channel };
}
