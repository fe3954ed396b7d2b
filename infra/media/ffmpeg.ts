// ffprobe and ffmpeg (and kvazaar) as child processes: probe results as data, progress from
// `-progress pipe:1`, the tail of stderr for failure reports, and a kill switch.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Probe {
  durationSeconds: number | null;
  video: { codec: string; width: number; height: number; fps: number; frames: number | null } | null;
  hasAudio: boolean;
  format: string;
}

export class MediaCommandFailed extends Error {
  constructor(
    message: string,
    readonly stderrTail: string,
  ) {
    super(message);
  }
}

const TAIL_LINES = 20;
/** An event keeps at most this much of a command's stderr (schemas/limits.ts). */
const TAIL_CHARS = 8000;

function tailOf(text: string, lines = TAIL_LINES): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n').slice(-TAIL_CHARS);
}

function rate(value: string | undefined): number {
  const [n, d] = (value ?? '0/1').split('/').map(Number);
  return d ? n! / d : Number(n) || 0;
}

/** Reads a media file's streams and duration; throws MediaCommandFailed when ffprobe cannot. */
export async function ffprobe(path: string, extraArgs: string[] = []): Promise<Probe> {
  const { stdout } = await run('ffprobe', ['-v', 'error', ...extraArgs, '-print_format', 'json', '-show_format', '-show_streams', path]);
  const info = JSON.parse(stdout) as {
    format?: { duration?: string; format_name?: string };
    streams?: {
      codec_type?: string;
      codec_name?: string;
      width?: number;
      height?: number;
      avg_frame_rate?: string;
      r_frame_rate?: string;
      nb_frames?: string;
      duration?: string;
    }[];
  };
  const streams = info.streams ?? [];
  const v = streams.find((s) => s.codec_type === 'video');
  const durations = [info.format?.duration, ...streams.map((s) => s.duration)].map(Number).filter((n) => Number.isFinite(n) && n > 0);
  const fps = v ? rate(v.avg_frame_rate) || rate(v.r_frame_rate) : 0;
  return {
    durationSeconds: durations.length ? Math.max(...durations) : null,
    video: v
      ? { codec: v.codec_name ?? '', width: v.width ?? 0, height: v.height ?? 0, fps, frames: v.nb_frames ? Number(v.nb_frames) : null }
      : null,
    hasAudio: streams.some((s) => s.codec_type === 'audio'),
    format: info.format?.format_name ?? '',
  };
}

export interface RunOptions {
  /** Called with each `-progress` block (key=value pairs up to `progress=`). */
  onProgress?: (p: Record<string, string>) => void;
  /** Lines of stdout other than progress (kvazaar reports on stderr; ffmpeg's progress is on stdout). */
  onStderr?: (chunk: string) => void;
  signal?: AbortSignal;
  /** How long a quiet process may run (no output at all) before it is killed. */
  idleTimeoutMs?: number;
}

/** Runs a command to the end; rejects with the tail of its stderr when it fails. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<{ stdout: string; stderrTail: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let block: Record<string, string> = {};
    let pending = '';
    let idle: NodeJS.Timeout | undefined;
    const touch = () => {
      if (!opts.idleTimeoutMs) return;
      clearTimeout(idle);
      idle = setTimeout(() => child.kill('SIGKILL'), opts.idleTimeoutMs);
    };
    touch();
    const onAbort = () => child.kill('SIGKILL');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      touch();
      if (!opts.onProgress) {
        stdout += d;
        return;
      }
      pending += d;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const eq = line.indexOf('=');
        if (eq < 0) continue;
        const key = line.slice(0, eq).trim();
        block[key] = line.slice(eq + 1).trim();
        if (key === 'progress') {
          opts.onProgress(block);
          block = {};
        }
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      touch();
      opts.onStderr?.(d);
      // Keep only what a failure report needs.
      stderr = (stderr + d).slice(-16_384);
    });
    child.once('error', (err) => {
      clearTimeout(idle);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(new MediaCommandFailed(`${cmd} could not start: ${err.message}`, ''));
    });
    child.once('close', (code, signal) => {
      clearTimeout(idle);
      opts.signal?.removeEventListener('abort', onAbort);
      const stderrTail = tailOf(stderr);
      if (code === 0) resolve({ stdout, stderrTail });
      else reject(new MediaCommandFailed(`${cmd} ${signal ? `was killed (${signal})` : `exited with ${code}`}`, stderrTail));
    });
  });
}

/** True when an executable of that name is on PATH. */
export function onPath(name: string, path = process.env.PATH ?? ''): boolean {
  return path.split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
