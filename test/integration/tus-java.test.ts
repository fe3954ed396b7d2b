// tus from a client that is not JavaScript: tus-java-client on the JDK, which cannot send PATCH
// and sends every chunk as POST with X-HTTP-Method-Override (tus 1.0 says a server MUST honour
// it). Killed mid-upload and resumed from its URL by a second run, the file arrives intact; the
// override for HEAD and DELETE, and a bad one, are checked with raw requests.
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { System, waitFor } from '../support/system.ts';
import { idOf, makeClip, newUserId, sha256 } from '../support/uploads.ts';

const exec = promisify(execFile);
const CLIENTS = join(import.meta.dirname, '..', 'clients', 'java');
let sys: System;
let dir: string;

/** One run of JavaTusUpload.java; prints "<upload url> <offset>". */
async function javaUpload(user: string, file: string, requestBytes: number, extra?: string): Promise<{ url: string; offset: number }> {
  const args = ['-cp', join(CLIENTS, 'target', 'lib', '*'), join(CLIENTS, 'JavaTusUpload.java')];
  const { stdout } = await exec('java', [...args, `${sys.api}/v1/uploads/`, user, file, String(requestBytes), ...(extra ? [extra] : [])], {
    timeout: 60_000,
  });
  const [url, offset] = stdout.trim().split(' ');
  return { url: url!, offset: Number(offset) };
}

const tusCall = (method: string, path: string, user: string, headers: Record<string, string> = {}) =>
  fetch(sys.api + path, { method, headers: { 'tus-resumable': '1.0.0', 'x-userid': user, ...headers } });

beforeAll(async () => {
  dir = `/tmp/castlog-tests/tus-java-${Date.now()}`;
  await mkdir(dir, { recursive: true });
  await exec('mvn', ['-q', '-f', join(CLIENTS, 'pom.xml'), 'dependency:copy-dependencies'], { timeout: 300_000 });
  sys = await System.create({ BLOB_DIR: join(dir, 'blobs') });
  await Promise.all([sys.start('api'), sys.start('relay'), sys.start('projector')]);
}, 360_000);
afterAll(async () => {
  await sys?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('tus-java-client (POST + X-HTTP-Method-Override: PATCH)', () => {
  it('uploads a video, stopped part way and resumed by a second run, byte-identical', async () => {
    const user = newUserId();
    const file = join(dir, 'clip.mp4');
    await makeClip(file, { seconds: 6, width: 640, height: 360 });
    const data = await readFile(file);
    expect(data.length).toBeGreaterThan(128 * 1024);

    const first = await javaUpload(user, file, 32 * 1024, String(Math.floor(data.length / 2)));
    expect(first.offset).toBeGreaterThanOrEqual(Math.floor(data.length / 2));
    expect(first.offset).toBeLessThan(data.length);
    const id = idOf(first.url);
    const head = await tusCall('HEAD', `/v1/uploads/${id}`, user);
    expect(head.headers.get('upload-offset')).toBe(String(first.offset));

    const second = await javaUpload(user, file, 32 * 1024, first.url);
    expect(second).toEqual({ url: first.url, offset: data.length });
    const state = await waitFor('the upload to be finished', async () => {
      const r = await (await fetch(`${sys.api}/v1/uploads/${id}`, { headers: { 'x-userid': user } })).json();
      return r.status !== 'uploading' && r;
    });
    expect(state).toMatchObject({
      status: 'completed',
      offset: data.length,
      length: data.length,
      sha256: sha256(data),
      filename: 'clip.mp4',
    });
    // Each chunk went as its own appended event: the override was a PATCH, not a new upload.
    const events = await sys.storedEvents(`upload-${id}`);
    expect(events.filter((e) => e.type === 'UploadCreated')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'UploadChunkAppended').length).toBeGreaterThan(2);
  }, 120_000);
});

describe('X-HTTP-Method-Override on the other tus methods', () => {
  const create = async (user: string, length: number) => {
    const r = await tusCall('POST', '/v1/uploads/', user, { 'upload-length': String(length) });
    expect(r.status).toBe(201);
    return idOf(r.headers.get('location')!);
  };

  it('HEAD: the offset, and no body', async () => {
    const user = newUserId();
    const id = await create(user, 1000);
    const r = await tusCall('POST', `/v1/uploads/${id}`, user, { 'x-http-method-override': 'HEAD' });
    expect(r.status).toBe(200);
    expect(r.headers.get('upload-offset')).toBe('0');
    expect(r.headers.get('upload-length')).toBe('1000');
    expect(await r.text()).toBe('');
  });

  it('DELETE: the unfinished upload is gone', async () => {
    const user = newUserId();
    const id = await create(user, 1000);
    const r = await tusCall('POST', `/v1/uploads/${id}`, user, { 'x-http-method-override': 'delete' });
    expect(r.status).toBe(204);
    const after = await tusCall('HEAD', `/v1/uploads/${id}`, user);
    expect(after.status).toBe(404);
  });

  it("someone else's upload stays theirs whatever the method says", async () => {
    const owner = newUserId();
    const id = await create(owner, 1000);
    for (const method of ['HEAD', 'DELETE', 'PATCH']) {
      const r = await tusCall('POST', `/v1/uploads/${id}`, newUserId(), { 'x-http-method-override': method });
      expect(r.status).toBe(404);
    }
    expect((await tusCall('HEAD', `/v1/uploads/${id}`, owner)).status).toBe(200);
  });

  it('any other method named is refused, naming the header, and changes nothing', async () => {
    const user = newUserId();
    const id = await create(user, 1000);
    for (const value of ['GET', 'OPTIONS', 'POST', 'PUT', '', 'PATCH, DELETE']) {
      const r = await tusCall('POST', `/v1/uploads/${id}`, user, { 'x-http-method-override': value });
      expect(r.status, value).toBe(400);
      expect(await r.json()).toMatchObject({ field: 'x-http-method-override' });
    }
    const events = await sys.storedEvents(`upload-${id}`);
    expect(events.map((e) => e.type)).toEqual(['UploadCreated']);
  });
});
