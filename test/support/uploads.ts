// Helpers for the upload and encode tests: small media made on the spot with ffmpeg's lavfi, a
// real tus-js-client upload, and ffprobe of what comes back.
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import * as tus from 'tus-js-client';

const exec = promisify(execFile);

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
export const newUserId = () => randomUUID();

/** ffmpeg, quiet, overwriting, reading a lavfi source (the next argument). */
const FROM_LAVFI = ['-nostdin', '-y', '-v', 'error', '-f', 'lavfi', '-i'];

/** An H.264 + AAC mp4 of testsrc and a sine tone. */
export async function makeClip(
  path: string,
  o: { seconds: number; width?: number; height?: number; fps?: number; audio?: boolean },
): Promise<void> {
  const { seconds, width = 320, height = 240, fps = 25, audio = true } = o;
  await exec('ffmpeg', [
    ...FROM_LAVFI,
    `testsrc=s=${width}x${height}:r=${fps}:d=${seconds}`,
    ...(audio ? ['-f', 'lavfi', '-i', `sine=f=440:d=${seconds}`, '-c:a', 'aac', '-shortest'] : []),
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-pix_fmt',
    'yuv420p',
    path,
  ]);
}

/** Raw yuv420p frames of testsrc. */
export async function makeYuv(path: string, o: { width: number; height: number; frames: number; fps?: number }): Promise<void> {
  await exec('ffmpeg', [
    ...FROM_LAVFI,
    `testsrc=s=${o.width}x${o.height}:r=${o.fps ?? 25}`,
    '-frames:v',
    String(o.frames),
    '-pix_fmt',
    'yuv420p',
    '-f',
    'rawvideo',
    path,
  ]);
}

export async function probe(path: string): Promise<{ format: string; codec: string; frames: number; audio: string | null }> {
  const { stdout } = await exec('ffprobe', [
    '-v',
    'error',
    '-count_frames',
    '-show_entries',
    'stream=codec_type,codec_name,nb_read_frames:format=format_name',
    '-of',
    'json',
    path,
  ]);
  const j = JSON.parse(stdout) as {
    streams: { codec_type: string; codec_name: string; nb_read_frames?: string }[];
    format: { format_name: string };
  };
  const v = j.streams.find((s) => s.codec_type === 'video');
  return {
    format: j.format.format_name,
    codec: v?.codec_name ?? '',
    frames: Number(v?.nb_read_frames ?? 0),
    audio: j.streams.find((s) => s.codec_type === 'audio')?.codec_name ?? null,
  };
}

/** Mean U (blue-difference chroma) of the frame at `seconds` (negative: from the end). */
export async function meanU(path: string, seconds: number): Promise<number> {
  const at = seconds < 0 ? ['-sseof', String(seconds)] : ['-ss', String(seconds)];
  const { stdout } = await exec('ffmpeg', [
    '-v',
    'error',
    ...at,
    '-i',
    path,
    '-frames:v',
    '1',
    '-vf',
    'signalstats,metadata=print:key=lavfi.signalstats.UAVG:file=-',
    '-f',
    'null',
    '-',
  ]);
  const m = /UAVG=([\d.]+)/.exec(stdout);
  if (!m) throw new Error(`no signalstats for ${path} at ${seconds}: ${stdout}`);
  return Number(m[1]);
}

export interface UploadOptions {
  userId: string;
  /** Instead of x-userid: how the client proves who it is (a user token, say). */
  headers?: Record<string, string>;
  filename: string;
  chunkSize?: number;
  uploadUrl?: string;
  onProgress?: (sent: number, total: number, upload: tus.Upload) => void;
}

/** Uploads with tus-js-client; resolves with the upload URL. */
export function tusUpload(api: string, data: Buffer, o: UploadOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const upload: tus.Upload = new tus.Upload(data, {
      endpoint: `${api}/v1/uploads/`,
      ...(o.uploadUrl ? { uploadUrl: o.uploadUrl } : {}),
      headers: o.headers ?? { 'x-userid': o.userId },
      metadata: { filename: o.filename, filetype: 'application/octet-stream' },
      uploadSize: data.length,
      ...(o.chunkSize ? { chunkSize: o.chunkSize } : {}),
      retryDelays: [],
      onProgress: (sent, total) => o.onProgress?.(sent, total, upload),
      onError: reject,
      onSuccess: () => resolve(upload.url!),
    });
    upload.start();
  });
}

export const idOf = (url: string) => url.split('/').pop()!;
