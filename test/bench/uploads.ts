// Scenario: uploads and the encode pipeline.
// 1. Upload MB/s: the same file, the same client (tus-js-client in this process, same chunk size),
//    to castlog's api (our tus store: hashing, fsync, an event per PATCH, a blob by sha256 at the
//    end) and to the same @tus/server with its plain @tus/file-store in a child process of its own.
//    Runs alternate; the best of each is kept.
// 2. Pipeline overhead: an encode through castlog (EncodeRequested to EncodeCompleted, through the
//    relay, Kafka and a worker) against the very same ffmpeg commands run one after another by hand
//    (apps/worker/commands.ts builds both). Alternating rounds, each with its own qp so dedup does
//    not answer; the best of each is kept.
// 3. Queue to start: how long a job waits between its request (EncodeRequested) and a worker starting
//    it (EncodeStepStarted of its first step), over jobs of a one-second clip asked for one after
//    another (each when the last is done), as percentiles.
// Knobs: BENCH_UPLOAD_MB (256; quick 32), BENCH_UPLOAD_CHUNK_MB (16; 0 = one PATCH per file), BENCH_UPLOAD_ROUNDS (3),
// BENCH_ENCODE_SECONDS (10; quick 3), BENCH_ENCODE_ROUNDS (2; quick 1), BENCH_QUEUE_JOBS (20; quick 6).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as tus from 'tus-js-client';
import { normalizeOptions } from '../../domain/encodes/options.ts';
import { ffprobe, run } from '../../infra/media/ffmpeg.ts';
import {
  encodeCommands,
  extractCommand,
  joinCommand,
  logoFrames,
  logoYuvCommand,
  muxCommand,
  type Media,
} from '../../apps/worker/commands.ts';
import { System, freePort, waitFor } from '../support/system.ts';
import { makeClip, sha256 } from '../support/uploads.ts';
import { QUICK, ROOT, fmt, knob } from './common.ts';

export interface UploadsResult {
  upload: {
    megabytes: number;
    chunkMegabytes: number;
    rounds: number;
    castlogMBps: number;
    fileStoreMBps: number;
    ratio: number;
    all: { castlog: number[]; fileStore: number[] };
    eventsPerUpload: number;
  };
  pipeline: {
    clip: string;
    rounds: number;
    castlogSeconds: number;
    byHandSeconds: number;
    overhead: number;
    all: { castlog: number[]; byHand: number[] };
  };
  queue: { jobs: number; p50Ms: number; p95Ms: number; maxMs: number; allMs: number[] };
}

type Log = (s: string) => void;

function upload(
  endpoint: string,
  data: Buffer,
  chunkSize: number,
  headers: Record<string, string> = {},
  filename = 'bench.yuv',
): Promise<{ seconds: number; url: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const u: tus.Upload = new tus.Upload(data, {
      endpoint,
      headers,
      chunkSize,
      uploadSize: data.length,
      metadata: { filename, filetype: 'application/octet-stream' },
      retryDelays: [],
      onError: reject,
      onSuccess: () => resolve({ seconds: (performance.now() - t0) / 1000, url: u.url! }),
    });
    u.start();
  });
}

/** The same tus server library with its plain file store, as its own process. */
async function startFileStoreServer(dir: string): Promise<{ endpoint: string; child: ChildProcess }> {
  const port = await freePort();
  const code = `
    import http from 'node:http';
    import { Server } from '@tus/server';
    import { FileStore } from '@tus/file-store';
    const tus = new Server({ path: '/files', datastore: new FileStore({ directory: ${JSON.stringify(dir)} }) });
    http.createServer((req, res) => tus.handle(req, res)).listen(${port}, '127.0.0.1', () => console.log('ready'));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`file-store server exited (${c})`)));
  });
  return { endpoint: `http://127.0.0.1:${port}/files/`, child };
}

async function byHand(clip: string, dir: string, qp: number): Promise<number> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const options = normalizeOptions({ preset: 'ultrafast', qp }, false);
  const t0 = performance.now();
  const p = await ffprobe(clip);
  const media: Media = {
    width: Math.floor(p.video!.width / 2) * 2,
    height: Math.floor(p.video!.height / 2) * 2,
    fps: p.video!.fps,
    frames: Math.round(p.durationSeconds! * p.video!.fps),
    hasAudio: p.hasAudio,
    durationSeconds: p.durationSeconds!,
  };
  const at = (f: string) => join(dir, f);
  const exec = async (c: { cmd: string; args: string[] }) => {
    const t = performance.now();
    await run(c.cmd, c.args);
    if (process.env.BENCH_TIMELINE) {
      const ms = Math.round(performance.now() - t);
      const step = c.args.includes('libx265')
        ? 'x265'
        : c.args.includes('concat')
          ? 'join'
          : c.args.includes('lavfi')
            ? 'logo yuv'
            : c.args.includes('copy')
              ? 'mux'
              : 'extract';
      console.error(`  by hand ${ms} ms ${step}`);
    }
  };
  await exec(extractCommand(clip, media, at('video.yuv'), media.hasAudio ? at('audio.wav') : null));
  const frames = (await stat(at('video.yuv'))).size / ((media.width * media.height * 3) / 2);
  for (const c of encodeCommands('x265', at('video.yuv'), media, options, at('video.mkv'))) await exec(c);
  await exec(logoYuvCommand(media, at('logo.yuv')));
  for (const c of encodeCommands('x265', at('logo.yuv'), media, options, at('logo.mkv'), logoFrames(media))) await exec(c);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(at('list.txt'), `file '${at('video.mkv')}'\nfile '${at('logo.mkv')}'\n`);
  await exec(joinCommand(at('list.txt'), at('joined.mkv'), frames + logoFrames(media)));
  await exec(
    muxCommand('mp4', at('joined.mkv'), media.hasAudio ? at('audio.wav') : null, media, frames + logoFrames(media), at('out.mp4')),
  );
  await rm(dir, { recursive: true, force: true });
  return (performance.now() - t0) / 1000;
}

export async function uploadsBench(log: Log): Promise<UploadsResult> {
  const megabytes = knob('UPLOAD_MB', 256, 32);
  const chunkMegabytes = knob('UPLOAD_CHUNK_MB', 16);
  const rounds = knob('UPLOAD_ROUNDS', 3, 2);
  const encodeSeconds = knob('ENCODE_SECONDS', 10, 3);
  const encodeRounds = knob('ENCODE_ROUNDS', 2, 1);
  const queueJobs = knob('QUEUE_JOBS', 20, 6);
  const work = join(ROOT, '.castlog', `bench-uploads-${Date.now()}`);
  await mkdir(work, { recursive: true });
  const sys = await System.create({ BLOB_DIR: join(work, 'blobs'), LOG_LEVEL: 'warn' });
  let fileServer: ChildProcess | undefined;
  try {
    await Promise.all([sys.start('api'), sys.start('relay'), sys.start('projector'), sys.start('worker')]);
    const fs = await startFileStoreServer(join(work, 'file-store'));
    fileServer = fs.child;

    // --- 1. upload MB/s ---
    // 0 MB means one PATCH for the whole file, tus-js-client's default.
    const chunk = chunkMegabytes > 0 ? chunkMegabytes * 1024 * 1024 : Infinity;
    const castlog: number[] = [];
    const fileStore: number[] = [];
    let eventsPerUpload = 0;
    for (let r = 0; r < rounds; r++) {
      // A fresh file each round: the same bytes twice would only be stored once by castlog.
      const data = randomBytes(megabytes * 1024 * 1024);
      const user = randomUUID();
      const a = await upload(`${sys.api}/v1/uploads/`, data, chunk, { 'x-userid': user });
      const id = a.url.split('/').pop()!;
      const events = await sys.db.selectFrom('events').select(['type', 'data']).where('stream', '=', `upload-${id}`).execute();
      const done = events.find((e) => e.type === 'UploadCompleted');
      if (!done || (sys.log.codec.decode(done.data).data as { sha256: string }).sha256 !== sha256(data))
        throw new Error('castlog upload did not complete with the right sha256');
      eventsPerUpload = events.length;
      const b = await upload(fs.endpoint, data, chunk);
      castlog.push(megabytes / a.seconds);
      fileStore.push(megabytes / b.seconds);
      log(`uploads round ${r + 1}: castlog ${fmt(megabytes / a.seconds, 1)} MB/s, @tus/file-store ${fmt(megabytes / b.seconds, 1)} MB/s`);
      await rm(join(work, 'file-store'), { recursive: true, force: true });
      await mkdir(join(work, 'file-store'), { recursive: true });
    }

    // --- 2. pipeline overhead ---
    const clip = join(work, 'clip.mp4');
    await makeClip(clip, { seconds: encodeSeconds, width: 640, height: 360, fps: 25 });
    const user = randomUUID();
    const uploaded = await upload(`${sys.api}/v1/uploads/`, readFileSync(clip), chunk, { 'x-userid': user }, 'clip.mp4');
    const uploadId = uploaded.url.split('/').pop()!;
    log(`pipeline: uploaded a ${encodeSeconds} s clip as ${uploadId}`);
    /** Asks for an encode; resolves with its events once it completed. */
    const encode = async (id: string, options: Record<string, unknown>) => {
      const asked = await fetch(`${sys.api}/v1/encodes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-userid': user },
        body: JSON.stringify({ uploadId: id, options }),
      });
      const answer = (await asked.json()) as { jobId: string };
      if (asked.status !== 202) throw new Error(`encode request refused: ${asked.status} ${JSON.stringify(answer)}`);
      const { jobId } = answer;
      await waitFor(
        `encode ${jobId}`,
        async () => {
          const rows = await sys.db
            .selectFrom('events')
            .select('type')
            .where('stream', '=', `encode-${jobId}`)
            .where('type', 'in', ['EncodeCompleted', 'EncodeFailed'])
            .execute();
          if (rows.some((e) => e.type === 'EncodeFailed')) throw new Error(`encode ${jobId} failed`);
          return rows.length > 0;
        },
        600_000,
        20,
      );
      const rows = await sys.db
        .selectFrom('events')
        .select(['type', 'data'])
        .where('stream', '=', `encode-${jobId}`)
        .orderBy('version')
        .execute();
      const events = rows.map((e) => ({ type: e.type, ...(sys.log.codec.decode(e.data).data as { at: number; step?: string }) }));
      // As the events record them: from the request's acceptance on.
      const at = (t: string) => events.find((e) => e.type === t)!.at;
      return { events, at, queueMs: at('EncodeStepStarted') - at('EncodeRequested') };
    };
    const viaCastlog: number[] = [];
    const viaHand: number[] = [];
    const queueMs: number[] = [];
    for (let r = 0; r < encodeRounds; r++) {
      const qp = 30 + r;
      const { events, at, queueMs: waited } = await encode(uploadId, { preset: 'ultrafast', qp });
      queueMs.push(waited);
      const seconds = (at('EncodeCompleted') - at('EncodeRequested')) / 1000;
      if (process.env.BENCH_TIMELINE) {
        const t = at('EncodeRequested');
        for (const e of events) if (e.type !== 'EncodeProgressed') log(`  +${e.at - t} ms ${e.type} ${e.step ?? ''}`);
      }
      viaCastlog.push(seconds);
      viaHand.push(await byHand(clip, join(work, 'by-hand'), qp));
      log(`pipeline round ${r + 1}: castlog ${fmt(seconds, 2)} s, same ffmpeg commands by hand ${fmt(viaHand.at(-1)!, 2)} s`);
    }

    // --- 3. queue to start ---
    const tiny = join(work, 'tiny.mp4');
    await makeClip(tiny, { seconds: 1, width: 160, height: 96, fps: 25 });
    const tinyUpload = await upload(`${sys.api}/v1/uploads/`, readFileSync(tiny), chunk, { 'x-userid': user }, 'tiny.mp4');
    const tinyId = tinyUpload.url.split('/').pop()!;
    for (let j = 0; j < queueJobs; j++) {
      // Options of their own each, so none is answered by dedup.
      const { queueMs: waited } = await encode(tinyId, {
        preset: 'ultrafast',
        qp: j % 52,
        container: ['mp4', 'mkv'][Math.floor(j / 52) % 2],
      });
      queueMs.push(waited);
    }
    const sorted = [...queueMs].sort((a, b) => a - b);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
    log(`queue to start over ${sorted.length} jobs: p50 ${pct(50)} ms, p95 ${pct(95)} ms, max ${sorted.at(-1)} ms`);

    const best = (xs: number[], max: boolean) => (max ? Math.max(...xs) : Math.min(...xs));
    const up = { castlog: best(castlog, true), fileStore: best(fileStore, true) };
    const pipe = { castlog: best(viaCastlog, false), byHand: best(viaHand, false) };
    return {
      upload: {
        megabytes,
        chunkMegabytes,
        rounds,
        castlogMBps: up.castlog,
        fileStoreMBps: up.fileStore,
        ratio: up.castlog / up.fileStore,
        all: { castlog, fileStore },
        eventsPerUpload,
      },
      pipeline: {
        clip: `${encodeSeconds} s 640x360 25 fps testsrc + sine, ultrafast, mp4 with logo`,
        rounds: encodeRounds,
        castlogSeconds: pipe.castlog,
        byHandSeconds: pipe.byHand,
        overhead: pipe.castlog / pipe.byHand - 1,
        all: { castlog: viaCastlog, byHand: viaHand },
      },
      queue: { jobs: sorted.length, p50Ms: pct(50), p95Ms: pct(95), maxMs: sorted.at(-1)!, allMs: queueMs },
    };
  } finally {
    fileServer?.kill('SIGTERM');
    await sys.stop();
    await rm(work, { recursive: true, force: true });
  }
}

/** Rows for the results table: [scenario, metric, castlog, baseline, ratio, target]. */
export function uploadsRows(u: UploadsResult): [string, string, string, string, string, string][] {
  const x = (r: number) => `${r.toFixed(2)}x`;
  return [
    [
      `6 uploads ${fmt(u.upload.megabytes)} MB, ${u.upload.chunkMegabytes ? `${fmt(u.upload.chunkMegabytes)} MB chunks` : 'one PATCH'}`,
      'tus upload MB/s (tus-js-client)',
      fmt(u.upload.castlogMBps, 1),
      `@tus/file-store ${fmt(u.upload.fileStoreMBps, 1)}`,
      x(u.upload.ratio),
      `>= 1x: ${u.upload.ratio >= 1 ? 'MET' : 'MISSED'}`,
    ],
    [
      '7 encode pipeline',
      'seconds, requested -> completed',
      fmt(u.pipeline.castlogSeconds, 2),
      `same ffmpeg by hand ${fmt(u.pipeline.byHandSeconds, 2)}`,
      `+${(u.pipeline.overhead * 100).toFixed(1)}%`,
      `<= 5%: ${u.pipeline.overhead <= 0.05 ? 'MET' : 'MISSED'}`,
    ],
    [
      `7 encode queue, ${fmt(u.queue.jobs)} jobs`,
      'ms, requested -> first step started',
      `p50 ${fmt(u.queue.p50Ms)}, p95 ${fmt(u.queue.p95Ms)}`,
      '',
      '',
      `p95 <= 100 ms: ${u.queue.p95Ms <= 100 ? 'MET' : 'MISSED'}`,
    ],
  ];
}

// Run on its own: `npx tsx test/bench/uploads.ts` (needs KAFKA_BROKERS and DATABASE_URL).
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const t0 = Date.now();
  const r = await uploadsBench((s) => console.error(`[bench ${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}`));
  for (const row of uploadsRows(r)) console.log(row.join(' | '));
  console.log(JSON.stringify(r));
  process.exit(0);
}
void QUICK;
