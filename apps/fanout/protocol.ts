// The live WebSocket protocol (docs/live-protocol.md is its description for client authors).
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';

/** Closed because it could not keep up: resubscribe with `since` = the last position received. */
export const CLOSE_SLOW_CONSUMER = 4008;
export const CLOSE_SLOW_REASON = 'slow consumer: reconnect and resubscribe with since=<last position>';
/** The server is restarting: reconnect and resubscribe with `since`. */
export const CLOSE_RESTART = 1012;
export const MAX_SUBSCRIPTIONS = 256;

/** A frame over this many bytes is closed with CLOSE_TOO_BIG. */
export const MAX_FRAME_BYTES = 16 * 1024;
/** What uWS itself reads of one message before it cuts the connection without a close frame
 *  (it cannot send one): kept well above MAX_FRAME_BYTES so that an oversized frame reaches us
 *  and gets a proper 1009, while bounding what one connection can make the server buffer. */
export const FRAME_HARD_LIMIT_BYTES = 1024 * 1024;
/** Message too big (RFC 6455). */
export const CLOSE_TOO_BIG = 1009;

export const MAX_REPLAYS = 8;
export const MAX_REPLAY_SPEED = 1000;
export const MIN_REPLAY_SPEED = 0.01;
/** The longest a replay may take, (to - from) / speed: a week, well inside what a timer can wait. */
export const MAX_REPLAY_MS = 7 * 24 * 3600_000;

export type ClientMessage =
  | { op: 'subscribe'; channel: string; since?: string; batch?: boolean }
  | { op: 'unsubscribe'; channel: string }
  | { op: 'replay'; channel: string; from: number; to: number; speed: number; id: string }
  | { op: 'stop_replay'; id: string };

export type ErrorCode =
  'bad_request' | 'invalid_channel' | 'invalid_position' | 'too_many_subscriptions' | 'too_many_replays' | 'unavailable' | 'forbidden';

export function captionMessage(
  d: Pick<CaptionFragmentReceived, 'channel' | 'station' | 'seq' | 'text' | 'start' | 'end' | 'mode' | 'lang'>,
  position: string,
): string {
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
export const replayCaptionMessage = (
  replay: string,
  position: string,
  d: Pick<CaptionFragmentReceived, 'channel' | 'station' | 'seq' | 'text' | 'start' | 'end' | 'mode' | 'lang'>,
) => JSON.stringify({ ...JSON.parse(captionMessage(d, position)), replay, originalTime: d.start });

export const replayStartedMessage = (replay: string, channel: string, from: number, to: number, speed: number) =>
  JSON.stringify({ type: 'replay_started', replay, channel, from, to, speed });

export const replayEndMessage = (replay: string, channel: string, sent: number, stopped: boolean) =>
  JSON.stringify({ type: 'replay_end', replay, channel, sent, stopped });

/** One of a user's own events (on channel "user:<id>"): stream activations, heartbeats, and so on. */
export const userEventMessage = (channel: string, position: string, event: string, data: unknown) =>
  JSON.stringify({ type: 'event', channel, position, event, data });

export const subscribedMessage = (channel: string, position: string, recovered: boolean, batch = false) =>
  JSON.stringify({ type: 'subscribed', channel, position, recovered, ...(batch ? { batch } : {}) });

/** Several messages of one channel in one frame, oldest first, each exactly as it would be sent alone
 *  (so each carries its position); only to a subscription that asked for batches. */
export const batchMessage = (channel: string, messages: readonly { json: string }[]) => {
  let inner = messages[0]!.json;
  for (let i = 1; i < messages.length; i++) inner += ',' + messages[i]!.json;
  return `{"type":"batch","channel":${JSON.stringify(channel)},"messages":[${inner}]}`;
};

export const unsubscribedMessage = (channel: string) => JSON.stringify({ type: 'unsubscribed', channel });

/** The frame a client sent cannot be served; `field` names the member at fault ("frame" when it is the
 *  frame as a whole), and is absent only when nothing in the frame is (`unavailable`). */
export interface Refusal {
  field?: string;
  message: string;
}

/** A refusal whose message starts with the field it names, like the HTTP API's errors. */
export const refusal = (field: string, problem: string): Refusal => ({ field, message: `${field}: ${problem}` });

export const errorMessage = (code: ErrorCode, r: Refusal, channel?: string) =>
  JSON.stringify({
    type: 'error',
    code,
    ...(r.field ? { field: r.field } : {}),
    message: r.message,
    ...(channel !== undefined ? { channel } : {}),
  });

/** Milliseconds since the epoch, or an ISO 8601 date. */
function time(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && v !== '') {
    const ms = Date.parse(v);
    if (Number.isFinite(ms)) return ms;
  }
  return undefined;
}

const days = (ms: number) => `${+(ms / 86_400_000).toFixed(1)} days`;

let replayCounter = 0;

export const isRefusal = (m: ClientMessage | Refusal): m is Refusal => !('op' in m);

/** Parses a client frame (text); a Refusal is the error to send back. */
export function parseClientMessage(raw: string): ClientMessage | Refusal {
  let m: unknown;
  try {
    m = JSON.parse(raw);
  } catch {
    return refusal('frame', 'is not valid JSON');
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return refusal('frame', 'must be a JSON object');
  const { op, channel, since, from, to, speed, id, batch } = m as Record<string, unknown>;
  if (op === 'stop_replay') return typeof id === 'string' ? { op, id } : refusal('id', 'must be the id of the replay to stop');
  if (op !== 'subscribe' && op !== 'unsubscribe' && op !== 'replay')
    return refusal('op', 'must be "subscribe", "unsubscribe", "replay" or "stop_replay"');
  if (typeof channel !== 'string') return refusal('channel', 'must be a string');
  if (op === 'replay') {
    const f = time(from);
    const t = time(to);
    if (f === undefined) return refusal('from', 'must be milliseconds since the epoch or an ISO 8601 date');
    if (t === undefined) return refusal('to', 'must be milliseconds since the epoch or an ISO 8601 date');
    if (t <= f) return refusal('to', 'must be after from');
    const sp = speed === undefined ? 1 : speed;
    if (typeof sp !== 'number' || !(sp >= MIN_REPLAY_SPEED) || sp > MAX_REPLAY_SPEED) {
      return refusal('speed', `must be a number from ${MIN_REPLAY_SPEED} to ${MAX_REPLAY_SPEED}`);
    }
    // Past this the replay would outlast the connection (and a timer cannot wait that long).
    if ((t - f) / sp > MAX_REPLAY_MS) {
      return refusal(
        'speed',
        `at ${sp}x this range takes ${days((t - f) / sp)}; ` +
          `a replay may take at most ${days(MAX_REPLAY_MS)}: raise speed or narrow from..to`,
      );
    }
    if (id !== undefined && (typeof id !== 'string' || id.length === 0 || id.length > 64))
      return refusal('id', 'must be a string of 1 to 64 characters');
    return { op, channel, from: f, to: t, speed: sp, id: (id as string | undefined) ?? `r${++replayCounter}` };
  }
  if (op === 'subscribe' && since !== undefined && since !== null && typeof since !== 'string')
    return refusal('since', 'must be a position string "partition:offset"');
  if (op === 'subscribe' && batch !== undefined && typeof batch !== 'boolean') return refusal('batch', 'must be true or false');
  if (op === 'unsubscribe') return { op, channel };
  return { op, channel, ...(typeof since === 'string' ? { since } : {}), ...(batch === true ? { batch } : {}) };
}
