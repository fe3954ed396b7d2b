// tus uploads through the real api, relay and projector: tus-js-client uploads cut at random
// offsets and resumed give byte-identical files; every bad request gets its status code and
// changes nothing; the limits (length, 30 minutes, unreadable), termination and expiration leave
// no bytes behind; nobody but the owner sees an upload.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tus from 'tus-js-client';
import { jsonOrUndefined } from '../support/http.ts';
import { TcpProxy } from '../support/proxy.ts';
import { System, waitFor } from '../support/system.ts';
import { idOf, makeClip, newUserId, sha256, tusUpload } from '../support/uploads.ts';

const MAX = 8 * 1024 * 1024;
// Short enough to watch an upload expire, long enough that a loaded machine finishes the others first.
const EXPIRY_MS = '8000';
let sys: System;
let dir: string;
let blobDir: string;

const blobPath = (hash: string) => join(blobDir, 'sha256', hash.slice(0, 2), hash.slice(2, 4), hash);
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A raw tus request. */
async function tusCall(method: string, path: string, userId: string | undefined, headers: Record<string, string> = {}, body?: Buffer) {
  const r = await fetch(sys.api + path, {
    method,
    headers: { 'tus-resumable': '1.0.0', ...(userId ? { 'x-userid': userId } : {}), ...headers },
    body: body ? new Uint8Array(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: jsonOrUndefined(text), text };
}

async function create(userId: string, length: number, filename = 'clip.mp4'): Promise<string> {
  const r = await tusCall('POST', '/v1/uploads/', userId, {
    'upload-length': String(length),
    'upload-metadata': `filename ${b64(filename)},filetype ${b64('video/mp4')}`,
  });
  expect(r.status, r.text).toBe(201);
  return idOf(r.headers.get('location')!);
}

const patch = (userId: string | undefined, id: string, offset: number, data: Buffer, headers: Record<string, string> = {}) =>
  tusCall(
    'PATCH',
    `/v1/uploads/${id}`,
    userId,
    { 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream', ...headers },
    data,
  );

/** A PATCH from offset 0 whose body is a stream the test controls (cut off, or left hanging). */
const streamingPatch = (api: string, userId: string, id: string, body: ReadableStream, signal: AbortSignal) =>
  fetch(`${api}/v1/uploads/${id}`, {
    method: 'PATCH',
    headers: { 'tus-resumable': '1.0.0', 'x-userid': userId, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' },
    body,
    duplex: 'half',
    signal,
  } as RequestInit).catch(() => undefined);

const uploadEvents = (id: string) => sys.storedEvents(`upload-${id}`);

const allEvents = async () => (await sys.db.selectFrom('events').select('position').execute()).length;

beforeAll(async () => {
  dir = `/tmp/castlog-tests/uploads-${Date.now()}`;
  blobDir = join(dir, 'blobs');
  await mkdir(dir, { recursive: true });
  sys = await System.create({
    BLOB_DIR: blobDir,
    UPLOAD_MAX_BYTES: String(MAX),
    UPLOAD_MAX_SECONDS: String(30 * 60),
    UPLOAD_EXPIRY_MS: EXPIRY_MS,
  });
  await Promise.all([sys.start('api'), sys.start('relay'), sys.start('projector')]);
});
afterAll(async () => {
  await sys?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('resumable uploads with tus-js-client', () => {
  it('cut at random offsets and resumed, five times over, the file is byte-identical', async () => {
    const user = newUserId();
    const data = randomBytes(5 * 1024 * 1024 + 12345);
    let url: string | undefined;
    const cuts = Array.from({ length: 5 }, () => Math.floor(Math.random() * data.length)).sort((a, b) => a - b);
    for (const cut of cuts) {
      // Each attempt aborts once past its cut, mid-chunk: the server keeps what arrived.
      await new Promise<void>((resolve, reject) => {
        const upload: tus.Upload = new tus.Upload(data, {
          endpoint: `${sys.api}/v1/uploads/`,
          ...(url ? { uploadUrl: url } : {}),
          headers: { 'x-userid': user },
          metadata: { filename: 'big.yuv' },
          chunkSize: 1024 * 1024,
          retryDelays: [],
          onProgress: (sent) => {
            if (sent >= cut) void upload.abort(false).then(() => resolve());
          },
          onUploadUrlAvailable: () => (url = upload.url!),
          onError: reject,
          onSuccess: () => resolve(),
        });
        upload.start();
      });
    }
    await tusUpload(sys.api, data, { userId: user, filename: 'big.yuv', chunkSize: 1024 * 1024, uploadUrl: url });
    const id = idOf(url!);
    // An aborted attempt may have carried the last bytes: the server then finishes the upload
    // (hash, checks, UploadCompleted) while the next client already sees every byte there.
    const events = await waitFor('the upload to be finished', async () => {
      const e = await uploadEvents(id);
      return e.at(-1)?.type !== 'UploadChunkAppended' && e;
    });
    const chunks = events.filter((e) => e.type === 'UploadChunkAppended').map((e) => e.data);
    // The chunks tile the file exactly, each with the hash of its own bytes.
    let at = 0;
    for (const c of chunks) {
      expect(c.offset).toBe(at);
      expect(c.sha256).toBe(sha256(data.subarray(c.offset, c.offset + c.length)));
      expect(c.userId).toBe(user);
      at += c.length;
    }
    expect(at).toBe(data.length);
    const done = events.at(-1)!;
    expect(done).toMatchObject({ type: 'UploadCompleted', data: { uploadId: id, userId: user, sha256: sha256(data), size: data.length } });
    expect(
      createHash('sha256')
        .update(readFileSync(blobPath(sha256(data))))
        .digest('hex'),
    ).toBe(sha256(data));
    expect(existsSync(join(blobDir, 'uploads', id))).toBe(false);
    const status = await fetch(`${sys.api}/v1/uploads/${id}`, { headers: { 'x-userid': user } });
    expect(await status.json()).toMatchObject({ status: 'completed', offset: data.length, sha256: sha256(data) });
  }, 60_000);

  it('one PATCH cut mid-body keeps the bytes that arrived, and the rest follows', async () => {
    const user = newUserId();
    const data = randomBytes(3 * 1024 * 1024);
    const id = await create(user, data.length, 'cut.yuv');
    // Half the body, then the connection goes: a request body that ends early.
    const half = data.subarray(0, 1024 * 1024 + 7);
    const controller = new AbortController();
    const body = new ReadableStream({
      start(c) {
        c.enqueue(new Uint8Array(half));
        setTimeout(() => controller.abort(), 300);
      },
    });
    await streamingPatch(sys.api, user, id, body, controller.signal);
    const offset = await waitFor('the partial chunk to be recorded', async () => {
      const r = await tusCall('HEAD', `/v1/uploads/${id}`, user);
      return Number(r.headers.get('upload-offset')) > 0 && Number(r.headers.get('upload-offset'));
    });
    expect(offset).toBe(half.length);
    const rest = await patch(user, id, offset, data.subarray(offset));
    expect(rest.status, rest.text).toBe(204);
    expect(Number(rest.headers.get('upload-offset'))).toBe(data.length);
    expect(sha256(readFileSync(blobPath(sha256(data))))).toBe(sha256(data));
  }, 30_000);
});

describe('bad requests get their status code and change nothing', () => {
  it('offsets, checksums, lengths, users and headers', async () => {
    const user = newUserId();
    const data = randomBytes(64 * 1024);
    const id = await create(user, data.length, 'x.yuv');
    expect((await patch(user, id, 0, data.subarray(0, 1000))).status).toBe(204);
    const before = await allEvents();

    const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('base64');
    const sha256b64 = (b: Buffer) => createHash('sha256').update(b).digest('base64');
    const next = data.subarray(1000, 2000);
    const cases: [string, () => Promise<{ status: number; body: any }>, number, string | undefined][] = [
      ['wrong offset', () => patch(user, id, 0, next), 409, 'upload-offset'],
      ['offset past the end', () => patch(user, id, 5000, next), 409, 'upload-offset'],
      [
        'sha1 mismatch',
        () => patch(user, id, 1000, next, { 'upload-checksum': `sha1 ${sha1(Buffer.from('other'))}` }),
        460,
        'upload-checksum',
      ],
      [
        'sha256 mismatch',
        () => patch(user, id, 1000, next, { 'upload-checksum': `sha256 ${sha256b64(Buffer.from('other'))}` }),
        460,
        'upload-checksum',
      ],
      ['unknown checksum algorithm', () => patch(user, id, 1000, next, { 'upload-checksum': `md5 ${b64('x')}` }), 400, 'upload-checksum'],
      ['malformed checksum', () => patch(user, id, 1000, next, { 'upload-checksum': 'sha1' }), 400, 'upload-checksum'],
      ['longer than the declared length', () => patch(user, id, 1000, randomBytes(data.length)), 413, undefined],
      ['no x-userid', () => patch(undefined, id, 1000, next), 400, 'x-userid'],
      ['x-userid not a UUID', () => patch('bob', id, 1000, next), 400, 'x-userid'],
      ["someone else's upload", () => patch(newUserId(), id, 1000, next), 404, 'uploadId'],
      ["someone else's HEAD", () => tusCall('HEAD', `/v1/uploads/${id}`, newUserId()), 404, undefined],
      ["someone else's DELETE", () => tusCall('DELETE', `/v1/uploads/${id}`, newUserId()), 404, 'uploadId'],
      ["someone else's status", () => tusCall('GET', `/v1/uploads/${id}`, newUserId()), 404, 'uploadId'],
      ['unknown upload', () => patch(user, id.replace(/.$/, id.endsWith('0') ? '1' : '0'), 0, next), 404, 'uploadId'],
      [
        'not a tus request',
        () =>
          tusCall(
            'PATCH',
            `/v1/uploads/${id}`,
            user,
            { 'tus-resumable': '0.2.2', 'upload-offset': '1000', 'content-type': 'application/offset+octet-stream' },
            next,
          ),
        400,
        'tus-resumable',
      ],
      ['wrong content type', () => patch(user, id, 1000, next, { 'content-type': 'text/plain' }), 400, 'content-type'],
      ['create over the maximum', () => tusCall('POST', '/v1/uploads/', user, { 'upload-length': String(MAX + 1) }), 413, 'upload-length'],
      ['create without a length', () => tusCall('POST', '/v1/uploads/', user, {}), 400, 'upload-length'],
      [
        'create with bad metadata',
        () => tusCall('POST', '/v1/uploads/', user, { 'upload-length': '10', 'upload-metadata': 'filename ***' }),
        400,
        'upload-metadata',
      ],
    ];
    for (const [what, run, status, field] of cases) {
      const r = await run();
      expect(r.status, `${what}: ${JSON.stringify(r.body)}`).toBe(status);
      if ((r as { text?: string }).text !== '') {
        expect(r.body?.error, what).toEqual(expect.any(String));
        if (field) expect(r.body.field, what).toBe(field);
      }
    }
    expect(await allEvents()).toBe(before);
    const head = await tusCall('HEAD', `/v1/uploads/${id}`, user);
    expect(head.headers.get('upload-offset')).toBe('1000');
    // Only the one accepted chunk is stored: every refused body was cut off again.
    expect(readdirSync(join(blobDir, 'uploads', id))).toEqual(['data']);
    expect(readFileSync(join(blobDir, 'uploads', id, 'data')).equals(data.subarray(0, 1000))).toBe(true);

    // The right checksum is accepted.
    const ok = await patch(user, id, 1000, next, { 'upload-checksum': `sha1 ${sha1(next)}` });
    expect(ok.status, ok.text).toBe(204);
    const ok2 = await patch(user, id, 2000, data.subarray(2000), { 'upload-checksum': `sha256 ${sha256b64(data.subarray(2000))}` });
    expect(ok2.status, ok2.text).toBe(204);
    expect((await uploadEvents(id)).at(-1)).toMatchObject({ type: 'UploadCompleted', data: { sha256: sha256(data) } });
  }, 60_000);

  it('creation-with-upload, OPTIONS advertises the extensions and checksums', async () => {
    const user = newUserId();
    const data = randomBytes(1000);
    const r = await tusCall(
      'POST',
      '/v1/uploads/',
      user,
      { 'upload-length': '1000', 'upload-metadata': `filename ${b64('a.yuv')}`, 'content-type': 'application/offset+octet-stream' },
      data,
    );
    expect(r.status, r.text).toBe(201);
    expect(r.headers.get('upload-offset')).toBe('1000');
    const options = await fetch(`${sys.api}/v1/uploads/`, { method: 'OPTIONS' });
    expect(options.status).toBe(204);
    expect(options.headers.get('tus-extension')!.split(',')).toEqual(
      expect.arrayContaining(['creation', 'creation-with-upload', 'checksum', 'termination', 'expiration']),
    );
    expect(options.headers.get('tus-checksum-algorithm')).toBe('sha1,sha256');
    expect(options.headers.get('tus-max-size')).toBe(String(MAX));
  });
});

describe('limits, termination and expiration leave no bytes behind', () => {
  it('a video longer than 30 minutes is rejected with the reason, and its bytes are gone', async () => {
    const user = newUserId();
    const long = join(dir, 'long.mp4');
    await makeClip(long, { seconds: 31 * 60, width: 16, height: 16, fps: 1, audio: false });
    const data = readFileSync(long);
    const err = await tusUpload(sys.api, data, { userId: user, filename: 'long.mp4' }).then(
      () => undefined,
      (e) => e,
    );
    expect(err?.originalResponse?.getStatus()).toBe(422);
    expect(JSON.parse(err.originalResponse.getBody())).toMatchObject({
      field: 'file',
      error: expect.stringMatching(/31 min.*at most 30 min/),
    });
    const id = idOf(err.originalRequest.getURL());
    expect((await uploadEvents(id)).at(-1)).toMatchObject({
      type: 'UploadRejected',
      data: { userId: user, reason: expect.stringContaining('31 min') },
    });
    expect(existsSync(blobPath(sha256(data)))).toBe(false);
    expect(existsSync(join(blobDir, 'uploads', id))).toBe(false);
    const status = await (await fetch(`${sys.api}/v1/uploads/${id}`, { headers: { 'x-userid': user } })).json();
    expect(status).toMatchObject({ status: 'rejected', reason: expect.stringContaining('31 min') });
  }, 60_000);

  it('a file that is not a video is rejected as unreadable; a raw .yuv of the same bytes is not', async () => {
    const user = newUserId();
    const junk = randomBytes(100_000);
    const err = await tusUpload(sys.api, junk, { userId: user, filename: 'junk.mp4' }).then(
      () => undefined,
      (e) => e,
    );
    expect(err?.originalResponse?.getStatus()).toBe(422);
    // ffprobe now and then finds a format in random bytes (an audio stream, say) but never a video.
    expect(JSON.parse(err.originalResponse.getBody()).error).toMatch(/not a readable video|no video stream found/);
    expect(existsSync(blobPath(sha256(junk)))).toBe(false);
    const url = await tusUpload(sys.api, junk, { userId: user, filename: 'junk.yuv' });
    expect((await uploadEvents(idOf(url))).at(-1)).toMatchObject({ type: 'UploadCompleted' });
  }, 30_000);

  it('termination by the owner removes the bytes; a finished upload cannot be terminated', async () => {
    const user = newUserId();
    const id = await create(user, 10_000, 't.yuv');
    expect((await patch(user, id, 0, randomBytes(4000))).status).toBe(204);
    expect(existsSync(join(blobDir, 'uploads', id))).toBe(true);
    const del = await tusCall('DELETE', `/v1/uploads/${id}`, user);
    expect(del.status, del.text).toBe(204);
    expect(existsSync(join(blobDir, 'uploads', id))).toBe(false);
    expect((await uploadEvents(id)).at(-1)).toMatchObject({ type: 'UploadTerminated', data: { userId: user } });
    expect((await tusCall('HEAD', `/v1/uploads/${id}`, user)).status).toBe(404);
    expect((await patch(user, id, 4000, randomBytes(10))).status).toBe(404);

    const done = idOf(await tusUpload(sys.api, randomBytes(500), { userId: user, filename: 'd.yuv' }));
    expect((await tusCall('DELETE', `/v1/uploads/${done}`, user)).status).toBe(400);
  });

  it('an unfinished upload expires: 410, UploadExpired, no bytes', async () => {
    const user = newUserId();
    const id = await create(user, 10_000, 'e.yuv');
    const first = await patch(user, id, 0, randomBytes(3000));
    expect(first.status).toBe(204);
    expect(first.headers.get('upload-expires')).toEqual(expect.any(String));
    // The sweep records the expiry, then removes the bytes.
    await waitFor(
      'the upload to expire and its bytes to go',
      async () => (await uploadEvents(id)).at(-1)?.type === 'UploadExpired' && !existsSync(join(blobDir, 'uploads', id)),
      20_000,
      250,
    );
    expect((await tusCall('HEAD', `/v1/uploads/${id}`, user)).status).toBe(410);
    expect((await patch(user, id, 3000, randomBytes(10))).status).toBe(410);
  }, 30_000);
});

describe('two api processes', () => {
  let other: System;
  beforeAll(async () => {
    other = await System.sharing(sys);
    await other.start('api', { BLOB_DIR: blobDir, UPLOAD_MAX_BYTES: String(MAX), UPLOAD_EXPIRY_MS: EXPIRY_MS });
  });
  afterAll(() => other?.stop());

  const patchVia = (api: System, userId: string, id: string, offset: number, data: Buffer) =>
    fetch(`${api.api}/v1/uploads/${id}`, {
      method: 'PATCH',
      headers: {
        'tus-resumable': '1.0.0',
        'x-userid': userId,
        'upload-offset': String(offset),
        'content-type': 'application/offset+octet-stream',
      },
      body: new Uint8Array(data),
    });

  it('a request on one takes an upload over from a PATCH still running on the other: no byte lost or doubled', async () => {
    const user = newUserId();
    const data = randomBytes(3 * 1024 * 1024);
    const id = await create(user, data.length, 'over.yuv');
    // A PATCH on the first api that sends a megabyte and then hangs (a client gone half-open).
    const hung = new AbortController();
    const body = new ReadableStream({ start: (c) => c.enqueue(new Uint8Array(data.subarray(0, 1024 * 1024))) });
    const first = streamingPatch(sys.api, user, id, body, hung.signal);
    await waitFor('the megabyte on disk', () => statSync(join(blobDir, 'uploads', id, 'data')).size === 1024 * 1024, 10_000, 20);

    // The client comes back through the other api: it asks where the upload stands. The running
    // PATCH is told to let go, keeps what it received, and the answer counts exactly that.
    const head = await fetch(`${other.api}/v1/uploads/${id}`, { method: 'HEAD', headers: { 'tus-resumable': '1.0.0', 'x-userid': user } });
    expect(head.status).toBe(200);
    const offset = Number(head.headers.get('upload-offset'));
    expect(offset).toBeGreaterThan(0);
    expect(readFileSync(join(blobDir, 'uploads', id, 'data')).equals(data.subarray(0, offset))).toBe(true);

    const rest = await patchVia(other, user, id, offset, data.subarray(offset));
    expect(rest.status).toBe(204);
    hung.abort();
    await first;
    const events = await uploadEvents(id);
    expect(events.at(-1)).toMatchObject({ type: 'UploadCompleted', data: { sha256: sha256(data), size: data.length } });
    expect(events.filter((e) => e.type === 'UploadChunkAppended').map((e) => [e.data.offset, e.data.length])).toEqual([
      [0, offset],
      [offset, data.length - offset],
    ]);
    expect(sha256(readFileSync(blobPath(sha256(data))))).toBe(sha256(data));
  }, 30_000);

  it('chunks spread over both are checked against their sha256 at completion; bytes changed behind their back are refused', async () => {
    const user = newUserId();
    const data = randomBytes(300_000);
    const parts = [data.subarray(0, 100_000), data.subarray(100_000, 200_000), data.subarray(200_000)];
    const good = await create(user, data.length, 'spread.yuv');
    for (const [i, api] of [sys, other, sys].entries()) expect((await patchVia(api, user, good, i * 100_000, parts[i]!)).status).toBe(204);
    expect((await uploadEvents(good)).at(-1)).toMatchObject({ type: 'UploadCompleted', data: { sha256: sha256(data) } });

    const bad = await create(user, data.length, 'rotten.yuv');
    expect((await patchVia(sys, user, bad, 0, parts[0]!)).status).toBe(204);
    expect((await patchVia(other, user, bad, 100_000, parts[1]!)).status).toBe(204);
    // A byte of the first chunk changes on disk (a fault castlog did not cause).
    const file = join(blobDir, 'uploads', bad, 'data');
    const stored = readFileSync(file);
    stored[12_345]! ^= 0xff;
    await writeFile(file, stored);
    const last = await patchVia(sys, user, bad, 200_000, parts[2]!);
    expect(last.status).toBe(422);
    expect(await last.json()).toMatchObject({ field: 'file', error: expect.stringMatching(/do not match the checksums/) });
    expect((await uploadEvents(bad)).at(-1)).toMatchObject({ type: 'UploadRejected' });
    expect(existsSync(join(blobDir, 'uploads', bad))).toBe(false);
    expect(existsSync(blobPath(createHash('sha256').update(stored).digest('hex')))).toBe(false);
  }, 30_000);
});

describe('Postgres out of reach', () => {
  it('answers 503 at once and changes nothing, then the upload resumes where it was', async () => {
    const pgUrl = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/castlog_test');
    const proxy = await TcpProxy.start({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
    const cut = await System.create({ BLOB_DIR: blobDir });
    const viaProxy = new URL(cut.env.DATABASE_URL!);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    cut.env.DATABASE_URL = viaProxy.toString();
    try {
      await cut.start('api');
      const user = newUserId();
      const data = randomBytes(200_000);
      const created = await fetch(`${cut.api}/v1/uploads/`, {
        method: 'POST',
        headers: {
          'tus-resumable': '1.0.0',
          'x-userid': user,
          'upload-length': String(data.length),
          'upload-metadata': `filename ${b64('out.yuv')}`,
        },
      });
      const id = idOf(created.headers.get('location')!);
      const send = (offset: number, part: Buffer) =>
        fetch(`${cut.api}/v1/uploads/${id}`, {
          method: 'PATCH',
          headers: {
            'tus-resumable': '1.0.0',
            'x-userid': user,
            'upload-offset': String(offset),
            'content-type': 'application/offset+octet-stream',
          },
          body: new Uint8Array(part),
        });
      expect((await send(0, data.subarray(0, 50_000))).status).toBe(204);

      await proxy.down();
      for (const request of [
        () => send(50_000, data.subarray(50_000)),
        () => fetch(`${cut.api}/v1/uploads/${id}`, { method: 'HEAD', headers: { 'tus-resumable': '1.0.0', 'x-userid': user } }),
      ]) {
        const t0 = performance.now();
        const r = await request();
        expect(performance.now() - t0).toBeLessThan(2000);
        expect(r.status).toBe(503);
      }
      expect(readFileSync(join(blobDir, 'uploads', id, 'data')).equals(data.subarray(0, 50_000))).toBe(true);

      await proxy.up();
      const resumed = await waitFor(
        'uploads to be served again',
        async () => {
          const r = await send(50_000, data.subarray(50_000));
          return r.status === 204 && r;
        },
        15_000,
        200,
      );
      expect(resumed.headers.get('upload-offset')).toBe(String(data.length));
      const last = await cut.db
        .selectFrom('events')
        .select(['type', 'data'])
        .where('stream', '=', `upload-${id}`)
        .orderBy('version', 'desc')
        .executeTakeFirstOrThrow();
      expect({ type: last.type, data: cut.log.codec.decode(last.data).data }).toMatchObject({
        type: 'UploadCompleted',
        data: { sha256: sha256(data) },
      });
    } finally {
      await proxy.down();
      await cut.stop();
    }
  }, 60_000);
});
