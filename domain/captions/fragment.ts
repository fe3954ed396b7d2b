// What a capture station may send, checked before anything is written. Pure: no I/O.
import type { CaptionMode } from '../../schemas/types.generated.ts';

export const MAX_TEXT_CHARS = 2000;
export const MODES: readonly CaptionMode[] = ['rollup', 'popon', 'painton'];
// BCP-47 in its common shape: a 2-3 letter language (or 4-8 letter registered one) and subtags;
// 35 characters hold any tag in practical use (RFC 5646, 4.4.1).
const BCP47 = /^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$/;
export const MAX_LANG_CHARS = 35;
export const BCP47_RULE = `must be a BCP-47 language tag such as "en" or "pt-BR", at most ${MAX_LANG_CHARS} characters`;
export const isBcp47 = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_LANG_CHARS && BCP47.test(v);
const FIELDS = new Set(['seq', 'text', 'start', 'end', 'mode', 'lang']);
// An unpaired UTF-16 surrogate (JSON can carry one as "\ud83d"): not a character, not encodable as UTF-8.
const LONE_SURROGATE = /\p{Cs}/u;

export interface Fragment {
  seq: number;
  text: string;
  start: number;
  end: number;
  mode: CaptionMode | null;
  lang: string | null;
}

export type FragmentCheck = { ok: true; fragment: Fragment } | { ok: false; error: string };

/** The largest integer avsc writes as an Avro long (one less than MAX_SAFE_INTEGER); larger cannot be stored. */
export const MAX_LONG = 9_007_199_254_740_990;

const fail = (error: string): FragmentCheck => ({ ok: false, error });
const isLong = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= MAX_LONG;

export function checkFragment(input: unknown): FragmentCheck {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return fail('a fragment must be a JSON object');
  const f = input as Record<string, unknown>;
  for (const key of Object.keys(f)) if (!FIELDS.has(key)) return fail(`${key}: unknown field`);
  if (!isLong(f.seq)) return fail('seq: must be a non-negative integer');
  if (typeof f.text !== 'string') return fail('text: must be a string');
  if (LONE_SURROGATE.test(f.text)) return fail('text: must be Unicode text (it has an unpaired surrogate escape)');
  // Postgres text cannot hold U+0000: accepting one would stop the read model at that fragment.
  if (f.text.includes('\u0000')) return fail('text: must not contain NUL (U+0000) characters');
  if (f.text.length > MAX_TEXT_CHARS && [...f.text].length > MAX_TEXT_CHARS) {
    return fail(`text: must be at most ${MAX_TEXT_CHARS} characters`);
  }
  if (!isLong(f.start)) return fail('start: must be milliseconds since the epoch (a non-negative integer)');
  if (!isLong(f.end)) return fail('end: must be milliseconds since the epoch (a non-negative integer)');
  if (f.end < f.start) return fail('end: must not be before start');
  if (f.mode !== undefined && f.mode !== null && !MODES.includes(f.mode as CaptionMode)) {
    return fail(`mode: must be one of ${MODES.join(', ')}`);
  }
  if (f.lang !== undefined && f.lang !== null && !isBcp47(f.lang)) return fail(`lang: ${BCP47_RULE}`);
  return {
    ok: true,
    fragment: {
      seq: f.seq,
      text: f.text,
      start: f.start,
      end: f.end,
      mode: (f.mode as CaptionMode | undefined) ?? null,
      lang: (f.lang as string | undefined) ?? null,
    },
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses one NDJSON line (raw bytes): invalid UTF-8 and malformed JSON are errors, not exceptions. */
export function parseFragmentLine(line: Uint8Array): FragmentCheck {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch {
    return fail('line is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return fail(`malformed JSON: ${(e as Error).message}`);
  }
  return checkFragment(value);
}
