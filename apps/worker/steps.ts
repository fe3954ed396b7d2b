// What each step of an encode does, in the job's folder of the blob store (shared, so a worker that
// takes a job over finds the outputs of the steps already completed). Each step returns what later
// steps need and the files it leaves; the worker records both in EncodeStepCompleted.
import { stat, rename, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { rawFrameBytes } from '../../domain/encodes/options.ts';
import type { JobState, Step } from '../../domain/encodes/job.ts';
import type { BlobStore } from '../../infra/blobs/blob-store.ts';
import { ffprobe, run } from '../../infra/media/ffmpeg.ts';
import {
  encodeCommands,
  extractCommand,
  joinCommand,
  logoFrames,
  logoYuvCommand,
  muxCommand,
  percentOf,
  type Command,
  type Encoder,
  type Media,
} from './commands.ts';

export interface StepContext {
  job: JobState;
  dir: string;
  /** The input file (the upload's blob). */
  input: string;
  blobs: BlobStore;
  encoder: Encoder;
  /** Suffix of this run's temporary files; a takeover removes any other run's. */
  part: string;
  signal: AbortSignal;
  progress: (percent: number) => void;
  /** What the completed steps recorded. */
  done: Partial<Record<Step, StepInfo>>;
}

export interface StepInfo {
  media?: Media;
  files: Record<string, number>;
  output?: { sha256: string; size: number };
}

async function sizeOf(path: string): Promise<number> {
  return (await stat(path)).size;
}

/** Runs commands in order; percent spreads evenly over them. */
async function runAll(ctx: StepContext, commands: Command[]): Promise<void> {
  for (const [i, c] of commands.entries()) {
    await run(c.cmd, c.args, {
      signal: ctx.signal,
      idleTimeoutMs: 10 * 60_000,
      onProgress: (block) => {
        const p = percentOf(block, c.total);
        if (p !== undefined) ctx.progress(((i + p / 100) / commands.length) * 100);
      },
      // kvazaar reports a line per frame on stderr, not -progress.
      onStderr: c.cmd === 'kvazaar' ? countFrames(ctx, c, i, commands.length) : undefined,
    });
  }
}

function countFrames(ctx: StepContext, c: Command, i: number, n: number) {
  let frames = 0;
  return (chunk: string) => {
    frames += chunk.split('POC ').length - 1;
    if ('frames' in c.total && c.total.frames > 0) ctx.progress(((i + Math.min(1, frames / c.total.frames)) / n) * 100);
  };
}

/** The media facts the steps so far established. */
function mediaOf(ctx: StepContext): Media {
  const media = ctx.done.probe?.media;
  if (!media) throw new Error('probe results missing');
  return { ...media, ...(ctx.done.extract?.media ?? {}) };
}

const tmp = (ctx: StepContext, name: string) => join(ctx.dir, `${name}${ctx.part}`);

async function keep(ctx: StepContext, name: string): Promise<number> {
  await rename(tmp(ctx, name), join(ctx.dir, name));
  return sizeOf(join(ctx.dir, name));
}

export const STEPS: Record<Step, (ctx: StepContext) => Promise<StepInfo>> = {
  async probe(ctx) {
    const { job } = ctx;
    if (job.raw) {
      const o = job.options!;
      const frames = Math.floor((await sizeOf(ctx.input)) / rawFrameBytes(o.width!, o.height!));
      return {
        media: { width: o.width!, height: o.height!, fps: o.fps!, frames, hasAudio: false, durationSeconds: frames / o.fps! },
        files: {},
      };
    }
    const p = await ffprobe(ctx.input);
    if (!p.video) throw new Error('the input has no video stream');
    const fps = p.video.fps > 0 && p.video.fps < 1000 ? p.video.fps : 25;
    const durationSeconds = p.durationSeconds ?? 0;
    const even = (n: number) => Math.max(2, Math.floor(n / 2) * 2);
    return {
      media: {
        width: even(p.video.width),
        height: even(p.video.height),
        fps,
        frames: Math.round(durationSeconds * fps),
        hasAudio: p.hasAudio,
        durationSeconds,
      },
      files: {},
    };
  },

  async extract(ctx) {
    const media = mediaOf(ctx);
    await runAll(ctx, [extractCommand(ctx.input, media, tmp(ctx, 'video.yuv'), media.hasAudio ? tmp(ctx, 'audio.wav') : null)]);
    const files: Record<string, number> = { 'video.yuv': await keep(ctx, 'video.yuv') };
    if (media.hasAudio) files['audio.wav'] = await keep(ctx, 'audio.wav');
    // The exact frame count, for percent and the logo check, is what the decoder produced.
    const frames = files['video.yuv']! / rawFrameBytes(media.width, media.height);
    return { media: { ...media, frames }, files };
  },

  async encode(ctx) {
    const media = mediaOf(ctx);
    const yuv = ctx.job.raw ? ctx.input : join(ctx.dir, 'video.yuv');
    await runAll(ctx, encodeCommands(ctx.encoder, yuv, media, ctx.job.options!, tmp(ctx, 'video.mkv')));
    await rm(tmp(ctx, 'video.mkv.hevc'), { force: true });
    return { files: { 'video.mkv': await keep(ctx, 'video.mkv') } };
  },

  async logo(ctx) {
    const media = mediaOf(ctx);
    const frames = logoFrames(media);
    const list = tmp(ctx, 'list.txt');
    await writeFile(list, ['video.mkv', `logo.mkv${ctx.part}`].map((f) => `file '${join(ctx.dir, f)}'`).join('\n') + '\n');
    try {
      await runAll(ctx, [
        logoYuvCommand(media, tmp(ctx, 'logo.yuv')),
        ...encodeCommands(ctx.encoder, tmp(ctx, 'logo.yuv'), media, ctx.job.options!, tmp(ctx, 'logo.mkv'), frames),
        joinCommand(list, tmp(ctx, 'joined.mkv'), media.frames + frames),
      ]);
    } finally {
      for (const f of ['logo.yuv', 'logo.mkv', 'logo.mkv.hevc', 'list.txt']) await rm(tmp(ctx, f), { force: true });
    }
    return { files: { 'joined.mkv': await keep(ctx, 'joined.mkv') } };
  },

  async mux(ctx) {
    const media = mediaOf(ctx);
    const o = ctx.job.options!;
    const video = join(ctx.dir, ctx.job.options!.logo ? 'joined.mkv' : 'video.mkv');
    const audio = ctx.done.extract?.files['audio.wav'] !== undefined ? join(ctx.dir, 'audio.wav') : null;
    const frames = media.frames + (o.logo ? logoFrames(media) : 0);
    const out = tmp(ctx, 'output');
    await runAll(ctx, [muxCommand(o.container as 'mp4' | 'mkv' | 'hevc', video, audio, media, frames, out)]);
    // The output joins the blob store under its own hash; the folder is about to go.
    const sha256 = await ctx.blobs.hashFile(out);
    const size = await sizeOf(out);
    await ctx.blobs.adopt(out, sha256);
    return { files: {}, output: { sha256, size } };
  },

  async cleanup(ctx) {
    await ctx.blobs.removeDir(ctx.dir);
    return { files: {} };
  },
};

/** True when every file a completed step left is still there at its recorded size. */
export async function stillThere(ctx: { dir: string; blobs: BlobStore }, info: StepInfo): Promise<boolean> {
  for (const [name, size] of Object.entries(info.files)) {
    if (
      (await stat(join(ctx.dir, name)).then(
        (s) => s.size,
        () => -1,
      )) !== size
    )
      return false;
  }
  if (info.output && (await ctx.blobs.size(info.output.sha256)) !== info.output.size) return false;
  return true;
}
