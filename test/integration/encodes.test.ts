// The encode pipeline end to end through the real processes (api, relay, projector, workers),
// real Kafka, Postgres and ffmpeg: upload with tus-js-client, ask for an encode, watch it run step
// by step, download the result and check it with ffprobe; dedup within one user; other users'
// content (their jobs never shared or told, their stored outputs reused); a lost output made
// anew; a worker killed mid-encode.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore } from '../../infra/blobs/blob-store.ts';
import { jsonOrUndefined } from '../support/http.ts';
import { sample, scrape } from '../support/metrics.ts';
import { System, waitFor } from '../support/system.ts';
import { idOf, makeClip, makeYuv, meanU, newUserId, probe, sha256, tusUpload } from '../support/uploads.ts';

let sys: System;
let dir: string;
let blobDir: string;

async function call(method: string, path: string, userId: string | undefined, body?: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(sys.api + path, {
    method,
    headers: {
      ...(userId ? { 'x-userid': userId } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const buf = Buffer.from(await r.arrayBuffer());
  return { status: r.status, body: jsonOrUndefined(buf.toString()), bytes: buf, headers: r.headers };
}

async function upload(userId: string, data: Buffer, filename: string): Promise<string> {
  return idOf(await tusUpload(sys.api, data, { userId, filename }));
}

async function finished(jobId: string, userId: string, timeoutMs = 90_000): Promise<any> {
  return waitFor(
    `job ${jobId} to finish`,
    async () => {
      const r = await call('GET', `/v1/encodes/${jobId}`, userId);
      return r.status === 200 && (r.body.status === 'completed' || r.body.status === 'failed') && r.body;
    },
    timeoutMs,
    200,
  );
}

const jobEvents = (jobId: string) => sys.storedEvents(`encode-${jobId}`);

/** True once the workers' consumer group has handled every record now in `encodes` (each EncodeRequested offered). */
async function workersCaughtUp(): Promise<boolean> {
  const committed = await sys.log.committed('castlog-workers', 'encodes');
  const ends = await sys.log.offsets('encodes');
  return ends.every(({ partition, low, high }) => {
    const at = committed.get(partition) ?? -1;
    return high === low || at >= high;
  });
}

/** An output as the owner downloads it. */
async function outputOf(jobId: string, userId: string): Promise<Buffer> {
  const r = await call('GET', `/v1/encodes/${jobId}/output`, userId);
  expect(r.status, r.bytes.toString().slice(0, 200)).toBe(200);
  return r.bytes;
}

/** What ffprobe makes of the bytes, written to `name` in the test's folder. */
async function probeBytes(bytes: Buffer, name: string): Promise<Awaited<ReturnType<typeof probe>>> {
  const file = join(dir, name);
  await writeFile(file, bytes);
  return probe(file);
}

beforeAll(async () => {
  dir = `/tmp/castlog-tests/encodes-${Date.now()}`;
  blobDir = join(dir, 'blobs');
  await mkdir(dir, { recursive: true });
  sys = await System.create({ BLOB_DIR: blobDir, WORKER_LEASE_MS: '3000', ENCODE_PROGRESS_INTERVAL_MS: '250' });
  await Promise.all([sys.start('api'), sys.start('relay'), sys.start('projector'), sys.start('worker')]);
});
afterAll(async () => {
  await sys?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('upload, encode, download', () => {
  it('a clip with audio becomes an HEVC mp4 with the logo at the end, every step an event', async () => {
    const user = newUserId();
    const clip = join(dir, 'clip.mp4');
    await makeClip(clip, { seconds: 2, width: 320, height: 240, fps: 25 });
    const uploadId = await upload(user, readFileSync(clip), 'holiday.mp4');

    const asked = await call('POST', '/v1/encodes', user, {
      uploadId,
      options: { preset: 'ultrafast', qp: 30, container: 'mp4', logo: true },
    });
    expect(asked.status, JSON.stringify(asked.body)).toBe(202);
    expect(asked.body).toMatchObject({ jobId: expect.any(String), status: 'queued' });
    const { jobId } = asked.body;

    const job = await finished(jobId, user);
    expect(job, JSON.stringify(job)).toMatchObject({
      status: 'completed',
      stepsDone: ['probe', 'extract', 'encode', 'logo', 'mux', 'cleanup'],
      output: { url: `/v1/encodes/${jobId}/output` },
    });

    const out = await call('GET', `/v1/encodes/${jobId}/output`, user);
    expect(out.status).toBe(200);
    expect(out.headers.get('content-type')).toBe('video/mp4');
    expect(out.headers.get('accept-ranges')).toBe('bytes');
    const file = join(dir, 'out.mp4');
    await writeFile(file, out.bytes);
    const p = await probe(file);
    expect(p).toMatchObject({ codec: 'hevc', audio: 'aac' });
    expect(p.format).toContain('mp4');
    expect(p.frames).toBe(50 + 25); // 2 s of video and 1 s of logo at 25 fps
    // The logo is a blue card: strongly blue chroma at the end, unlike the test pattern before it.
    expect(await meanU(file, -0.1)).toBeGreaterThan(170);
    expect(await meanU(file, 0.5)).toBeLessThan(150);

    const part = await call('GET', `/v1/encodes/${jobId}/output`, user, undefined, { range: 'bytes=100-199' });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${out.bytes.length}`);
    expect(part.bytes.equals(out.bytes.subarray(100, 200))).toBe(true);
    const tail = await call('GET', `/v1/encodes/${jobId}/output`, user, undefined, { range: 'bytes=-10' });
    expect(tail.status).toBe(206);
    expect(tail.bytes.equals(out.bytes.subarray(-10))).toBe(true);
    expect((await call('GET', `/v1/encodes/${jobId}/output`, user, undefined, { range: `bytes=${out.bytes.length}-` })).status).toBe(416);

    const events = await jobEvents(jobId);
    for (const e of events) expect(e.data.userId, e.type).toBe(user);
    const steps = (type: string) => events.filter((e) => e.type === type).map((e) => e.data.step);
    expect(steps('EncodeStepStarted')).toEqual(['probe', 'extract', 'encode', 'logo', 'mux', 'cleanup']);
    expect(steps('EncodeStepCompleted')).toEqual(['probe', 'extract', 'encode', 'logo', 'mux', 'cleanup']);
    expect(events.at(-1)).toMatchObject({
      type: 'EncodeCompleted',
      data: { outputSha256: sha256(out.bytes), size: out.bytes.length, container: 'mp4' },
    });
    expect(events.filter((e) => e.type === 'EncodeProgressed').length).toBeGreaterThan(0);
    // Intermediate files are gone; only the output (and the upload) remain, by hash.
    expect(existsSync(join(blobDir, 'jobs', jobId))).toBe(false);

    // Nobody else sees it.
    expect((await call('GET', `/v1/encodes/${jobId}`, newUserId())).status).toBe(404);
    expect((await call('GET', `/v1/encodes/${jobId}/output`, newUserId())).status).toBe(404);

    // What an operator sees of it: the job, each step's time, its wait for a worker, none running.
    const metrics = await scrape(sys.ports.get('worker')!);
    expect(sample(metrics, 'castlog_worker_jobs_total', { outcome: 'completed' })).toBeGreaterThanOrEqual(1);
    for (const step of ['probe', 'extract', 'encode', 'logo', 'mux', 'cleanup']) {
      expect(sample(metrics, 'castlog_worker_step_duration_seconds_count', { step, outcome: 'completed' }), step).toBeGreaterThanOrEqual(1);
    }
    expect(sample(metrics, 'castlog_worker_queue_wait_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(sample(metrics, 'castlog_worker_running_jobs')).toBe(0);
    expect(sample(metrics, 'castlog_encode_jobs', { status: 'running' })).toBe(0);
  }, 120_000);

  it('raw yuv becomes HEVC in Matroska, and bare HEVC without the logo', async () => {
    const user = newUserId();
    const yuv = join(dir, 'raw.yuv');
    await makeYuv(yuv, { width: 64, height: 48, frames: 30, fps: 30 });
    const uploadId = await upload(user, readFileSync(yuv), 'camera.yuv');

    const mkv = await call('POST', '/v1/encodes', user, {
      uploadId,
      options: { preset: 'fast', qp: 28, container: 'mkv', width: 64, height: 48, fps: 30 },
    });
    expect(mkv.status, JSON.stringify(mkv.body)).toBe(202);
    const bare = await call('POST', '/v1/encodes', user, {
      uploadId,
      options: { preset: 'ultrafast', container: 'hevc', logo: false, width: 64, height: 48, fps: 30 },
    });
    expect(bare.status, JSON.stringify(bare.body)).toBe(202);

    const a = await finished(mkv.body.jobId, user);
    expect(a, JSON.stringify(a)).toMatchObject({ status: 'completed', stepsDone: ['probe', 'encode', 'logo', 'mux', 'cleanup'] });
    expect(await probeBytes(await outputOf(mkv.body.jobId, user), 'raw.mkv')).toMatchObject({
      codec: 'hevc',
      format: 'matroska,webm',
      frames: 30 + 30,
      audio: null,
    });

    const b = await finished(bare.body.jobId, user);
    expect(b, JSON.stringify(b)).toMatchObject({ status: 'completed', stepsDone: ['probe', 'encode', 'mux', 'cleanup'] });
    expect(await probeBytes(await outputOf(bare.body.jobId, user), 'raw.hevc')).toMatchObject({
      codec: 'hevc',
      format: 'hevc',
      frames: 30,
    });
  }, 120_000);
});

describe('dedup within one user', () => {
  it('the same file with the same options is one job of yours, and asking again while it runs does not disturb its worker', async () => {
    const alice = newUserId();
    const clip = join(dir, 'dedup.mp4');
    // Long enough an encode that asking again lands while it runs (checked below).
    await makeClip(clip, { seconds: 4, width: 640, height: 360, audio: false });
    const bytes = readFileSync(clip);
    const options = { preset: 'medium', qp: 35 };
    const mine = await upload(alice, bytes, 'a.mp4');

    const before = await call('POST', '/v1/encodes/check', alice, { sha256: sha256(bytes), options });
    expect(before).toMatchObject({ status: 200, body: { exists: false } });

    const first = await call('POST', '/v1/encodes', alice, { uploadId: mine, options });
    expect(first.status).toBe(202);
    const { jobId } = first.body;
    expect((await call('POST', '/v1/encodes/check', alice, { sha256: sha256(bytes), options })).body).toMatchObject({
      exists: true,
      jobId,
    });

    // Asked again while a worker is encoding: the same job, and the worker carries on with it.
    // Defaults filled in are the same options as spelled out; another upload of the same bytes is the same file.
    const second = await upload(alice, bytes, 'again.mp4');
    await waitFor(
      'the encode step to be running',
      async () => (await jobEvents(jobId)).some((e) => e.type === 'EncodeStepStarted' && e.data.step === 'encode'),
      60_000,
      20,
    );
    const again = await call('POST', '/v1/encodes', alice, { uploadId: second, options: { ...options, container: 'mp4', logo: true } });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body).toMatchObject({ jobId, deduplicated: true, again: true });

    const job = await finished(jobId, alice);
    expect(job, JSON.stringify(job)).toMatchObject({
      status: 'completed',
      attempt: 1,
      stepsDone: ['probe', 'extract', 'encode', 'logo', 'mux', 'cleanup'],
    });
    const events = await jobEvents(jobId);
    expect(events.filter((e) => e.type === 'EncodeRequested')).toHaveLength(1);
    const types = events.map((e) => e.type);
    expect(types.indexOf('EncodeDeduplicated'), 'asked again while the job was running').toBeLessThan(types.indexOf('EncodeCompleted'));
    expect(events.filter((e) => e.type === 'EncodeDeduplicated').map((e) => [e.data.userId, e.data.again])).toEqual([[alice, true]]);
    // No takeover: every step started once, all by the same worker.
    const started = events.filter((e) => e.type === 'EncodeStepStarted');
    expect(started.map((e) => e.data.step)).toEqual(['probe', 'extract', 'encode', 'logo', 'mux', 'cleanup']);
    expect(new Set(started.map((e) => e.data.worker)).size).toBe(1);

    const different = await call('POST', '/v1/encodes/check', alice, { sha256: sha256(bytes), options: { ...options, qp: 36 } });
    expect(different.body).toMatchObject({ exists: false });
  }, 120_000);
});

describe("other users' content", () => {
  it(
    'a second user gets a job of their own, told nothing of the first, completed at once from the stored output; ' +
      'a lost output is made anew',
    async () => {
      const alice = newUserId();
      const bob = newUserId();
      const clip = join(dir, 'shared.mp4');
      await makeClip(clip, { seconds: 1, width: 160, height: 120 });
      const bytes = readFileSync(clip);
      const options = { preset: 'ultrafast', qp: 33, container: 'mkv' };
      const hers = await upload(alice, bytes, 'alice.mp4');
      const asked = await call('POST', '/v1/encodes', alice, { uploadId: hers, options });
      expect(asked.status).toBe(202);
      const aliceJob = asked.body.jobId;
      expect(await finished(aliceJob, alice)).toMatchObject({ status: 'completed' });
      const aliceOutput = await outputOf(aliceJob, alice);

      // Bob holds the same file. Before he asks, check answers him exactly as for a file nobody has.
      const theirs = await upload(bob, bytes, 'bob.mp4');
      const nobodys = await call('POST', '/v1/encodes/check', bob, { sha256: sha256(Buffer.from('a file nobody has')), options });
      const check = await call('POST', '/v1/encodes/check', bob, { sha256: sha256(bytes), options });
      expect(check).toMatchObject({ status: 200, body: { exists: false, jobId: null, status: null } });
      expect(check.body).toEqual(nobodys.body);

      // His request is a job of his own, completed at once with the output already stored: no encode.
      const his = await call('POST', '/v1/encodes', bob, { uploadId: theirs, options });
      expect(his.status, JSON.stringify(his.body)).toBe(202);
      expect(his.body).toEqual({ jobId: expect.any(String), status: 'completed', attempt: 1 });
      const bobJob = his.body.jobId;
      expect(bobJob).not.toBe(aliceJob);
      const job = await finished(bobJob, bob);
      expect(job, JSON.stringify(job)).toMatchObject({
        status: 'completed',
        attempt: 1,
        stepsDone: [],
        uploadId: theirs,
        filename: 'bob.mp4',
      });
      expect((await outputOf(bobJob, bob)).equals(aliceOutput)).toBe(true);
      expect((await call('POST', '/v1/encodes/check', bob, { sha256: sha256(bytes), options })).body).toEqual({
        exists: true,
        jobId: bobJob,
        status: 'completed',
      });
      // The workers have been handed his EncodeRequested; none ran it.
      await waitFor('the workers to have seen every encode request', workersCaughtUp, 30_000, 100);
      const bobEvents = await jobEvents(bobJob);
      expect(bobEvents.map((e) => e.type)).toEqual(['EncodeRequested', 'EncodeCompleted']);
      expect(bobEvents[1]!.data).toMatchObject({
        userId: bob,
        outputSha256: sha256(aliceOutput),
        size: aliceOutput.length,
        container: 'mkv',
      });
      for (const e of bobEvents) expect(e.data.userId).toBe(bob);

      // Neither sees the other's job, nor can tell it from one that does not exist.
      const none = '00000000-0000-4000-8000-000000000000';
      for (const [who, other] of [
        [bob, aliceJob],
        [alice, bobJob],
      ] as const) {
        const seen = await call('GET', `/v1/encodes/${other}`, who);
        expect(seen.status).toBe(404);
        expect(seen.body.error.replace(other, none)).toBe((await call('GET', `/v1/encodes/${none}`, who)).body.error);
        expect((await call('GET', `/v1/encodes/${other}/output`, who)).status).toBe(404);
      }
      expect((await call('POST', '/v1/encodes/check', alice, { sha256: sha256(bytes), options })).body).toMatchObject({ jobId: aliceJob });
      expect((await jobEvents(aliceJob)).every((e) => e.data.userId === alice)).toBe(true);

      // The output's bytes go from the blob store: both jobs answer 410 and neither is an existing result.
      const blob = new BlobStore(blobDir);
      await blob.remove(sha256(aliceOutput));
      expect((await call('GET', `/v1/encodes/${aliceJob}/output`, alice)).status).toBe(410);
      expect((await call('GET', `/v1/encodes/${bobJob}/output`, bob)).status).toBe(410);
      expect((await call('POST', '/v1/encodes/check', bob, { sha256: sha256(bytes), options })).body).toMatchObject({ exists: false });

      // Bob asks again: a new attempt of his job, encoded for real (the missing blob is not reused), and the output is back.
      const anew = await call('POST', '/v1/encodes', bob, { uploadId: theirs, options });
      expect(anew.status, JSON.stringify(anew.body)).toBe(202);
      expect(anew.body).toEqual({ jobId: bobJob, status: 'queued', attempt: 2 });
      const redone = await waitFor(
        'the second attempt to complete',
        async () => {
          const r = await call('GET', `/v1/encodes/${bobJob}`, bob);
          return r.body?.status === 'completed' && r.body.attempt === 2 && r.body;
        },
        90_000,
        200,
      );
      expect(redone.stepsDone).toEqual(['probe', 'extract', 'encode', 'logo', 'mux', 'cleanup']);
      const remade = await outputOf(bobJob, bob);
      expect(await probeBytes(remade, 'remade.mkv')).toMatchObject({ codec: 'hevc', frames: 25 + 25 });
      const steps = (await jobEvents(bobJob)).filter((e) => e.type === 'EncodeStepStarted');
      expect(steps.length).toBeGreaterThan(0);
      expect(steps.every((e) => e.data.attempt === 2)).toBe(true);

      // Alice asks again too: her output is whatever is stored now for this file and options (the
      // same bytes her job made, if the encoder repeats itself; else bob's), without another encode.
      const hersAgain = await call('POST', '/v1/encodes', alice, { uploadId: hers, options });
      expect([200, 202], JSON.stringify(hersAgain.body)).toContain(hersAgain.status);
      expect(hersAgain.body).toMatchObject({ jobId: aliceJob, status: 'completed' });
      await waitFor(
        'alice to see her job completed',
        async () => (await call('GET', `/v1/encodes/${aliceJob}/output`, alice)).status === 200,
        30_000,
        100,
      );
      expect((await outputOf(aliceJob, alice)).equals(remade)).toBe(true);
      expect((await jobEvents(aliceJob)).filter((e) => e.type === 'EncodeStepStarted').every((e) => e.data.attempt === 1)).toBe(true);
    },
    180_000,
  );
});

describe('a failing encode', () => {
  it('records EncodeFailed with the reason and the tail of stderr, leaves no files, and can be asked for again', async () => {
    const user = newUserId();
    const clip = join(dir, 'broken.mp4');
    await makeClip(clip, { seconds: 1, width: 160, height: 120 });
    const bytes = readFileSync(clip);
    const uploadId = await upload(user, bytes, 'broken.mp4');
    // The stored file goes bad behind castlog's back (a disk fault, say): half of it is left.
    const stored = new BlobStore(blobDir).pathOf(sha256(bytes));
    await writeFile(stored, bytes.subarray(0, bytes.length >> 1));

    const asked = await call('POST', '/v1/encodes', user, { uploadId, options: { preset: 'ultrafast' } });
    expect(asked.status).toBe(202);
    const { jobId } = asked.body;
    const job = await finished(jobId, user);
    expect(job).toMatchObject({ status: 'failed', error: expect.stringMatching(/^probe: ffprobe exited with 1/), output: null });
    expect(job.stderrTail).toMatch(/moov atom not found|Invalid data/);
    const failed = (await jobEvents(jobId)).find((e) => e.type === 'EncodeFailed')!;
    expect(failed.data).toMatchObject({ step: 'probe', reason: job.error, stderrTail: job.stderrTail });
    expect(existsSync(join(blobDir, 'jobs', jobId))).toBe(false);
    expect((await call('GET', `/v1/encodes/${jobId}/output`, user)).status).toBe(409);
    // A failed job is not an existing result: asking again is a new attempt, which now succeeds.
    expect((await call('POST', '/v1/encodes/check', user, { sha256: sha256(bytes), options: { preset: 'ultrafast' } })).body).toMatchObject(
      { exists: false },
    );
    await writeFile(stored, bytes);
    const retry = await call('POST', '/v1/encodes', user, { uploadId, options: { preset: 'ultrafast' } });
    expect(retry).toMatchObject({ status: 202, body: { jobId, attempt: 2 } });
    await waitFor(
      'the second attempt to complete',
      async () => {
        const r = await call('GET', `/v1/encodes/${jobId}`, user);
        return r.body?.status === 'completed' && r.body.attempt === 2 && r.body;
      },
      90_000,
      200,
    );
  }, 120_000);
});

describe('a worker killed mid-encode', () => {
  it('another worker takes the job over from the last completed step, and no file is left behind', async () => {
    const user = newUserId();
    const clip = join(dir, 'long.mp4');
    await makeClip(clip, { seconds: 8, width: 640, height: 360, fps: 25 });
    const uploadId = await upload(user, readFileSync(clip), 'long.mp4');
    const asked = await call('POST', '/v1/encodes', user, { uploadId, options: { preset: 'medium', qp: 24 } });
    expect(asked.status).toBe(202);
    const { jobId } = asked.body;
    const jobDir = join(blobDir, 'jobs', jobId);

    const first = await waitFor(
      'the encode step to be running',
      async () => {
        const events = await jobEvents(jobId);
        const started = events.find((e) => e.type === 'EncodeStepStarted' && e.data.step === 'encode');
        // Progress alone can be the worker's heartbeat before ffmpeg has opened its output: wait for
        // the half-written file too (a fresh-clone run on a busy machine killed the worker before it).
        const writing = () => existsSync(jobDir) && readdirSync(jobDir).some((f) => f.includes('.part-'));
        return started && events.some((e) => e.type === 'EncodeProgressed' && e.data.step === 'encode') && writing() && started.data.worker;
      },
      60_000,
      50,
    );
    await sys.kill('worker');
    const partial = readdirSync(jobDir);
    expect(partial.some((f) => f.includes('.part-'))).toBe(true); // the killed worker's half-written output

    await sys.start('worker');
    const job = await finished(jobId, user);
    expect(job, JSON.stringify(job)).toMatchObject({ status: 'completed' });
    const metrics = await scrape(sys.ports.get('worker')!);
    expect(sample(metrics, 'castlog_worker_takeovers_total')).toBe(1);
    expect(sample(metrics, 'castlog_worker_jobs_total', { outcome: 'completed' })).toBe(1);
    expect(sample(metrics, 'castlog_worker_step_duration_seconds_count', { step: 'encode', outcome: 'completed' })).toBe(1);

    const events = await jobEvents(jobId);
    const started = events.filter((e) => e.type === 'EncodeStepStarted');
    expect(started.map((e) => e.data.step)).toEqual(['probe', 'extract', 'encode', 'encode', 'logo', 'mux', 'cleanup']);
    const second = started[3]!.data.worker;
    expect(second).not.toBe(first);
    expect(new Set(started.slice(0, 3).map((e) => e.data.worker))).toEqual(new Set([first]));
    expect(new Set(started.slice(3).map((e) => e.data.worker))).toEqual(new Set([second]));
    // After the takeover, only the new worker wrote.
    const takeover = events.indexOf(started[3]!);
    expect(events.slice(takeover).filter((e) => e.type === 'EncodeProgressed' && e.data.step === 'encode').length).toBeGreaterThan(0);
    expect(existsSync(join(blobDir, 'jobs', jobId))).toBe(false);
    // Nothing of the job anywhere but its output: the store holds finished files and no job folders.
    expect(readdirSync(join(blobDir, 'jobs'))).toEqual([]);

    expect(await probeBytes(await outputOf(jobId, user), 'long-out.mp4')).toMatchObject({ codec: 'hevc', frames: 200 + 25 });
  }, 180_000);
});

describe('bad encode requests', () => {
  it('get 400 naming the field (or 404, 409), and change nothing', async () => {
    const user = newUserId();
    const clip = join(dir, 'bad.mp4');
    await makeClip(clip, { seconds: 1, width: 160, height: 120, audio: false });
    const uploadId = await upload(user, readFileSync(clip), 'bad.mp4');
    const yuvPath = join(dir, 'bad.yuv');
    await makeYuv(yuvPath, { width: 32, height: 32, frames: 3 });
    const rawId = await upload(user, readFileSync(yuvPath), 'bad.yuv');
    const unfinished = await fetch(`${sys.api}/v1/uploads/`, {
      method: 'POST',
      headers: {
        'tus-resumable': '1.0.0',
        'x-userid': user,
        'upload-length': '100',
        'upload-metadata': `filename ${Buffer.from('u.mp4').toString('base64')}`,
      },
    });
    const unfinishedId = idOf(unfinished.headers.get('location')!);
    const count = async () => (await sys.db.selectFrom('events').select('position').where('stream', 'like', 'encode-%').execute()).length;
    const before = await count();

    const cases: [unknown, string | undefined, number, string][] = [
      [{ options: {} }, user, 400, 'uploadId'],
      [{ uploadId: 'nope' }, user, 400, 'uploadId'],
      [{ uploadId, extra: 1 }, user, 400, 'extra'],
      [{ uploadId }, undefined, 400, 'x-userid'],
      [{ uploadId, options: { qp: 52 } }, user, 400, 'options.qp'],
      [{ uploadId, options: { qp: 1.5 } }, user, 400, 'options.qp'],
      [{ uploadId, options: { preset: 'warp' } }, user, 400, 'options.preset'],
      [{ uploadId, options: { container: 'avi' } }, user, 400, 'options.container'],
      [{ uploadId, options: { logo: 'yes' } }, user, 400, 'options.logo'],
      [{ uploadId, options: { width: 640 } }, user, 400, 'options.width'],
      [{ uploadId, options: { bitrate: 5 } }, user, 400, 'options.bitrate'],
      [{ uploadId, options: 'fast' }, user, 400, 'options'],
      [{ uploadId: rawId, options: { width: 32, height: 32 } }, user, 400, 'options.fps'],
      [{ uploadId: rawId, options: { width: 31, height: 32, fps: 25 } }, user, 400, 'options.width'],
      // 3 frames of 32x32 is not whole frames of 64x64
      [{ uploadId: rawId, options: { width: 64, height: 64, fps: 25 } }, user, 400, 'options.width'],
      [{ uploadId: rawId, options: { width: 32, height: 32, fps: 0 } }, user, 400, 'options.fps'],
      [{ uploadId }, newUserId(), 404, 'uploadId'],
      [{ uploadId: '00000000-0000-4000-8000-000000000000' }, user, 404, 'uploadId'],
      [{ uploadId: unfinishedId }, user, 409, 'uploadId'],
      ['{"uploadId": ', user, 400, 'body'],
      [[1, 2], user, 400, 'body'],
    ];
    for (const [body, who, status, field] of cases) {
      const r = await call('POST', '/v1/encodes', who, body);
      expect(r.status, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`).toBe(status);
      expect(r.body, JSON.stringify(body)).toMatchObject({ error: expect.any(String), field });
    }
    for (const [body, status, field] of [
      [{ sha256: 'abc' }, 400, 'sha256'],
      [{ sha256: 'a'.repeat(64), options: { qp: -1 } }, 400, 'options.qp'],
      [{ sha256: 'a'.repeat(64), options: { width: 32, height: 32 } }, 400, 'options.fps'],
    ] as const) {
      const r = await call('POST', '/v1/encodes/check', user, body);
      expect(r.status, JSON.stringify(r.body)).toBe(status);
      expect(r.body.field).toBe(field);
    }
    expect((await call('GET', '/v1/encodes/not-a-job', user)).status).toBe(404);
    expect((await call('GET', '/v1/encodes/00000000-0000-4000-8000-000000000000', user)).status).toBe(404);
    expect(await count()).toBe(before);
  }, 60_000);
});
