// Encode options: validation with the field at fault, defaults, and the normalized form that
// decides whether two requests are the same encode (Kvazaar cloud's dedup by file + options, kept
// within one user: another user's request of the same encode is a job of their own).
import { createHash } from 'node:crypto';
import type { EncodeOptions } from '../../schemas/types.generated.ts';
import { DomainError } from '../decider.ts';

export const PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow', 'slower', 'veryslow'] as const;
export const CONTAINERS = ['mp4', 'mkv', 'hevc'] as const;
export const DEFAULTS = { preset: 'medium', qp: 22, container: 'mp4', logo: true } as const;
const KNOWN = new Set(['preset', 'qp', 'container', 'logo', 'width', 'height', 'fps']);

const invalid = (field: string, problem: string) => new DomainError('invalid', `options.${field}: ${problem}`);

function dimension(value: unknown, field: string): number {
  if (!Number.isInteger(value) || (value as number) < 16 || (value as number) > 8192 || (value as number) % 2 !== 0) {
    throw invalid(field, 'must be an even integer from 16 to 8192');
  }
  return value as number;
}

/**
 * Checks options sent by a client and fills in the defaults. Raw video needs width, height and
 * fps (a .yuv file does not say them); any other input carries its own, so they are refused there.
 */
export function normalizeOptions(input: unknown, raw: boolean): EncodeOptions {
  if (input === undefined || input === null) input = {};
  if (typeof input !== 'object' || Array.isArray(input)) throw new DomainError('invalid', 'options: must be an object');
  const o = input as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!KNOWN.has(key)) throw invalid(key, 'unknown option');
  const preset = o.preset ?? DEFAULTS.preset;
  if (typeof preset !== 'string' || !(PRESETS as readonly string[]).includes(preset))
    throw invalid('preset', `must be one of ${PRESETS.join(', ')}`);
  const qp = o.qp ?? DEFAULTS.qp;
  if (!Number.isInteger(qp) || (qp as number) < 0 || (qp as number) > 51) throw invalid('qp', 'must be an integer from 0 to 51');
  const container = o.container ?? DEFAULTS.container;
  if (typeof container !== 'string' || !(CONTAINERS as readonly string[]).includes(container))
    throw invalid('container', `must be one of ${CONTAINERS.join(', ')}`);
  const logo = o.logo ?? DEFAULTS.logo;
  if (typeof logo !== 'boolean') throw invalid('logo', 'must be true or false');
  let width: number | null = null;
  let height: number | null = null;
  let fps: number | null = null;
  if (raw) {
    for (const f of ['width', 'height', 'fps'] as const) if (o[f] === undefined) throw invalid(f, 'required for raw .yuv input');
    width = dimension(o.width, 'width');
    height = dimension(o.height, 'height');
    if (typeof o.fps !== 'number' || !Number.isFinite(o.fps) || o.fps <= 0 || o.fps > 240)
      throw invalid('fps', 'must be a number above 0 and at most 240');
    fps = o.fps;
  } else {
    for (const f of ['width', 'height', 'fps'] as const)
      if (o[f] !== undefined) throw invalid(f, 'only for raw .yuv input; other files carry their own');
  }
  return { preset, qp: qp as number, container, logo, width, height, fps };
}

/**
 * One user's encode of one file with the same normalized options is one job: its id is derived from
 * all three. Another user never lands on it (they get a job of their own, which may reuse its output).
 */
export function jobIdOf(userId: string, sha256: string, options: EncodeOptions): string {
  const key = JSON.stringify([
    userId,
    sha256,
    options.preset,
    options.qp,
    options.container,
    options.logo,
    options.width,
    options.height,
    options.fps,
  ]);
  const h = createHash('sha256').update(key).digest();
  // Formatted as a UUID (version 8: custom), so job ids look like every other id here.
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Bytes of one raw yuv420p frame. */
export const rawFrameBytes = (width: number, height: number) => (width * height * 3) / 2;
