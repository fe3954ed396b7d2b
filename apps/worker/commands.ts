// The commands of each encode step, as data: the worker runs them, and the bench runs the very same
// ones by hand to measure what the pipeline adds. The worker has them write to temporary names and
// renames once a command succeeded, so a file under its final name is whole.
import type { EncodeOptions } from '../../schemas/types.generated.ts';

export interface Media {
  width: number;
  height: number;
  fps: number;
  frames: number;
  hasAudio: boolean;
  durationSeconds: number;
}

export interface Command {
  cmd: string;
  args: string[];
  /** For percent: frames it will write, or microseconds of output. */
  total: { frames: number } | { us: number };
}

export type Encoder = 'x265' | 'kvazaar';

/** Seconds of logo appended at the end of every encode that asks for it. */
export const LOGO_SECONDS = 1;
/** The logo: a blue card with a white bar, drawn by ffmpeg's lavfi (no downloaded asset). */
export const LOGO_COLOR = '0x2563eb';

// Progress four times a second (ffmpeg's default is twice), so even a short step shows percents between
// 0 and 100; the worker still sends at most one EncodeProgressed per ENCODE_PROGRESS_INTERVAL_MS.
const QUIET = ['-nostdin', '-y', '-hide_banner', '-v', 'error', '-nostats', '-stats_period', '0.25', '-progress', 'pipe:1'];

const rate = (fps: number) => (Number.isInteger(fps) ? String(fps) : fps.toFixed(3));

export function extractCommand(input: string, media: Media, videoOut: string, audioOut: string | null): Command {
  return {
    cmd: 'ffmpeg',
    args: [
      ...QUIET,
      '-i',
      input,
      // yuv420p needs even sizes; the probe step rounded them down.
      '-map',
      '0:v:0',
      '-vf',
      `scale=${media.width}:${media.height}`,
      '-pix_fmt',
      'yuv420p',
      '-f',
      'rawvideo',
      videoOut,
      ...(audioOut ? ['-map', '0:a:0', '-ac', '2', '-ar', '48000', '-f', 'wav', audioOut] : []),
    ],
    total: { us: media.durationSeconds * 1e6 },
  };
}

/**
 * HEVC from raw frames. Intermediates are Matroska, not bare HEVC: a bare stream with B-frames has
 * no timestamps, and joining or muxing it loses frames.
 */
export function encodeCommands(
  encoder: Encoder,
  yuv: string,
  media: Media,
  o: EncodeOptions,
  out: string,
  frames = media.frames,
): Command[] {
  const size = `${media.width}x${media.height}`;
  if (encoder === 'kvazaar') {
    const bare = `${out}.hevc`;
    return [
      {
        cmd: 'kvazaar',
        args: [
          '-i',
          yuv,
          '--input-res',
          size,
          '--input-fps',
          rate(media.fps),
          '--preset',
          o.preset,
          '--qp',
          String(o.qp),
          '--gop',
          '0',
          '-o',
          bare,
        ],
        total: { frames },
      },
      {
        cmd: 'ffmpeg',
        args: [...QUIET, '-framerate', rate(media.fps), '-i', bare, '-c', 'copy', '-f', 'matroska', out],
        total: { frames },
      },
    ];
  }
  return [
    {
      cmd: 'ffmpeg',
      args: [
        ...QUIET,
        '-f',
        'rawvideo',
        '-pix_fmt',
        'yuv420p',
        '-s',
        size,
        '-r',
        rate(media.fps),
        '-i',
        yuv,
        '-c:v',
        'libx265',
        '-preset',
        o.preset,
        '-x265-params',
        `qp=${o.qp}:log-level=error`,
        '-f',
        'matroska',
        out,
      ],
      total: { frames },
    },
  ];
}

/** The logo as raw frames of the video's size and rate, to be encoded like the video. */
export function logoYuvCommand(media: Media, out: string): Command {
  const card =
    `color=c=${LOGO_COLOR}:s=${media.width}x${media.height}:r=${rate(media.fps)}:d=${LOGO_SECONDS},` +
    'drawbox=x=iw/4:y=ih*2/5:w=iw/2:h=ih/5:color=white:t=fill';
  return {
    cmd: 'ffmpeg',
    args: [...QUIET, '-f', 'lavfi', '-i', card, '-pix_fmt', 'yuv420p', '-f', 'rawvideo', out],
    total: { frames: logoFrames(media) },
  };
}

export const logoFrames = (media: Media) => Math.round(media.fps * LOGO_SECONDS);

/** Joins encoded pieces without re-encoding (the concat demuxer reads the list file). */
export function joinCommand(list: string, out: string, frames: number): Command {
  return {
    cmd: 'ffmpeg',
    args: [...QUIET, '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', '-f', 'matroska', out],
    total: { frames },
  };
}

export function muxCommand(
  container: 'mp4' | 'mkv' | 'hevc',
  video: string,
  audio: string | null,
  media: Media,
  frames: number,
  out: string,
): Command {
  const withAudio = audio !== null && container !== 'hevc';
  const format = { mp4: ['-tag:v', 'hvc1', '-movflags', '+faststart', '-f', 'mp4'], mkv: ['-f', 'matroska'], hevc: ['-f', 'hevc'] }[
    container
  ];
  return {
    cmd: 'ffmpeg',
    args: [
      ...QUIET,
      '-i',
      video,
      ...(withAudio ? ['-i', audio] : []),
      '-map',
      '0:v:0',
      ...(withAudio ? ['-map', '1:a:0', '-c:a', 'aac', '-b:a', '128k'] : []),
      '-c:v',
      'copy',
      ...format,
      out,
    ],
    total: { us: (frames / media.fps) * 1e6 },
  };
}

/** Percent done from one `-progress` block of ffmpeg. */
export function percentOf(block: Record<string, string>, total: Command['total']): number | undefined {
  if ('frames' in total) {
    const frame = Number(block.frame);
    return Number.isFinite(frame) && total.frames > 0 ? Math.min(100, (frame / total.frames) * 100) : undefined;
  }
  const us = Number(block.out_time_us ?? block.out_time_ms);
  return Number.isFinite(us) && total.us > 0 ? Math.min(100, (us / total.us) * 100) : undefined;
}
