// Protocol edges of the HTTP API: tus requests that must change nothing, errors that must not
// show server paths, stalled bodies, browser security headers, one CORS policy, a config that
// does not echo the Host header, credentials kept out of logs, and overload told from outage.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonOf, rawRequest } from '../support/http.ts';
import { System, waitFor } from '../support/system.ts';
import { newUserId } from '../support/uploads.ts';

let sys: System;
const user = newUserId();

beforeAll(async () => {
  sys = await System.create({ BODY_IDLE_TIMEOUT_MS: '1000', ALLOWED_ORIGINS: 'https://partner.example', LOG_LEVEL: 'info' });
  await sys.start('api');
});
afterAll(() => sys?.stop());

const events = () => sys.eventCount();
const b64 = (s: string) => Buffer.from(s).toString('base64');
const tus = { 'tus-resumable': '1.0.0', 'x-userid': user };

describe('tus requests that change nothing', () => {
  it.each([
    ['NUL in the filename', `filename ${b64('a\u0000b.mp4')}`],
    ['a control character in the filetype', `filename ${b64('a.mp4')},filetype ${b64('video/\u0007mp4')}`],
    ['a filename of 256 characters', `filename ${b64('x'.repeat(256))}`],
  ])('%s: 400 naming upload-metadata, no upload', async (_name, metadata) => {
    const before = await events();
    const r = await rawRequest(sys.apiPort, 'POST', '/v1/uploads/', { ...tus, 'upload-length': '10', 'upload-metadata': metadata });
    expect(r.status).toBe(400);
    expect(jsonOf(r)).toMatchObject({ field: 'upload-metadata' });
    expect(await events()).toBe(before);
  });

  it('creation-with-upload whose body is longer than Upload-Length: 413, no upload is created', async () => {
    const before = await events();
    const r = await rawRequest(
      sys.apiPort,
      'POST',
      '/v1/uploads/',
      { ...tus, 'upload-length': '4', 'content-type': 'application/offset+octet-stream' },
      'more than four bytes',
    );
    expect(r.status).toBe(413);
    expect(jsonOf(r)).toMatchObject({ field: 'content-length' });
    expect(await events()).toBe(before);
  });

  it('an upload of nothing is rejected with a reason that names no server path', async () => {
    const created = await rawRequest(sys.apiPort, 'POST', '/v1/uploads/', {
      ...tus,
      'upload-length': '0',
      'upload-metadata': `filename ${b64('empty.mp4')}`,
    });
    expect(created.status).toBe(422);
    expect(jsonOf(created)).toMatchObject({ status: 422, error: expect.stringMatching(/^file: not a readable video/), field: 'file' });
    for (const b of [created.body]) {
      expect(b).not.toMatch(/\/(blobs|uploads|tmp|work|root|home)\//);
      expect(b).not.toContain(process.cwd());
    }
  });
});

describe('a stalled body', () => {
  it('is answered 408 after BODY_IDLE_TIMEOUT_MS, and changes nothing', async () => {
    const before = await events();
    const socket = net.connect(sys.apiPort, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d));
    const closed = new Promise((r) => socket.once('close', r));
    const t0 = Date.now();
    socket.write(
      `PUT /v1/admin/users/${user}/limit HTTP/1.1\r\nhost: x\r\nauthorization: Bearer test-admin-token\r\n` +
        'content-type: application/json\r\ncontent-length: 100\r\n\r\n{"limit":',
    );
    await closed;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(text).toMatch(/^HTTP\/1.1 408/);
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toMatchObject({
      status: 408,
      detail: 'body: nothing received for 1 s',
      error: 'body: nothing received for 1 s',
      field: 'body',
    });
    expect(await events()).toBe(before);
  });

  it('300 stalled bodies at once are all ended, and the api goes on answering', async () => {
    let closed = 0;
    const sockets = Array.from({ length: 300 }, () => {
      const s = net.connect(sys.apiPort, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('close', () => closed++);
      s.resume(); // read what comes, so the socket can see its end

      s.write(
        `POST /v1/encodes/check HTTP/1.1\r\nhost: x\r\nx-userid: ${user}\r\ncontent-type: application/json\r\ncontent-length: 50\r\n\r\n{`,
      );
      return new Promise((r) => s.once('close', r));
    });
    expect((await rawRequest(sys.apiPort, 'GET', '/healthz')).status).toBe(200);
    await Promise.all(sockets);
    expect(closed).toBe(300);
  });
});

describe('browser-facing headers', () => {
  it('pages send a CSP with frame-ancestors, nosniff and no referrer', async () => {
    for (const page of ['/', '/search', '/upload', '/admin']) {
      const r = await rawRequest(sys.apiPort, 'GET', page);
      expect(r.status).toBe(200);
      expect(r.headers['content-security-policy']).toMatch(/default-src 'none'/);
      expect(r.headers['content-security-policy']).toMatch(/frame-ancestors 'none'/);
      expect(r.headers['content-security-policy']).toMatch(/script-src 'self' 'sha256-/);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['referrer-policy']).toBe('no-referrer');
    }
    expect((await rawRequest(sys.apiPort, 'GET', '/v1/channels')).headers['x-content-type-options']).toBe('nosniff');
  });

  it('one CORS policy for every route, tus included: ALLOWED_ORIGINS gets it, others do not', async () => {
    const check = async (origin: string) => {
      const plain = await rawRequest(sys.apiPort, 'GET', '/v1/channels', { origin });
      const preflight = await rawRequest(sys.apiPort, 'OPTIONS', '/v1/uploads/', {
        origin,
        'access-control-request-method': 'PATCH',
        'access-control-request-headers': 'upload-offset,tus-resumable',
      });
      const created = await rawRequest(sys.apiPort, 'POST', '/v1/uploads/', { ...tus, origin, 'upload-length': '1' });
      return [plain, preflight, created].map((r) => r.headers['access-control-allow-origin']);
    };
    expect(await check('https://partner.example')).toEqual([
      'https://partner.example',
      'https://partner.example',
      'https://partner.example',
    ]);
    expect(await check('https://evil.example')).toEqual([undefined, undefined, undefined]);
  });

  it('/v1/config comes from configuration, never from the Host header', async () => {
    const r = await rawRequest(sys.apiPort, 'GET', '/v1/config', { host: 'evil.example:1234' });
    expect(r.body).not.toContain('evil.example');
    expect(jsonOf(r)).toEqual({ liveUrl: null, livePort: sys.fanoutPort, livePath: '/v1/live' });
  });
});

describe('logs', () => {
  it('never hold a credential from a query string', async () => {
    await rawRequest(sys.apiPort, 'GET', '/v1/channels?token=secret-token-in-a-url&key=secret-key-in-a-url');
    await rawRequest(sys.apiPort, 'GET', '/nowhere?token=secret-token-in-a-url');
    const logs = await waitFor('request logs', () => {
      const text = sys.said('api');
      return text.includes('/nowhere') && text;
    });
    expect(logs).toContain('token=[redacted]');
    expect(logs).not.toContain('secret-token-in-a-url');
    expect(logs).not.toContain('secret-key-in-a-url');
  });
});

describe('overload is not an outage', () => {
  it('2,000 concurrent activations with Postgres up: each is decided, or told "busy" with Retry-After — never "unavailable"', async () => {
    await sys.start('relay');
    const streamId = jsonOf(await rawRequest(sys.apiPort, 'GET', '/streams/newId')).streamId;
    const users = await Promise.all(
      Array.from({ length: 200 }, async () => jsonOf(await rawRequest(sys.apiPort, 'GET', '/users/newId')).userId as string),
    );
    const answers = await Promise.all(
      Array.from({ length: 2000 }, (_, i) =>
        fetch(`${sys.api}/streams/${streamId}/activate`, { method: 'PATCH', headers: { 'x-userid': users[i % users.length]! } }).then(
          async (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.json() }),
        ),
      ),
    );
    const counts = new Map<string, number>();
    for (const a of answers)
      counts.set(`${a.status} ${a.body.error ?? ''}`.trim(), (counts.get(`${a.status} ${a.body.error ?? ''}`.trim()) ?? 0) + 1);
    console.log('2,000 activations:', Object.fromEntries(counts));
    for (const a of answers) {
      if (a.status === 503) {
        expect(a.body.error).toMatch(/^busy/);
        expect(a.retryAfter).toBe('1');
      } else expect(a.status).toBe(200);
    }
  }, 120_000);
});

describe('creation-with-upload that runs past Upload-Length without saying so up front', () => {
  it('is 413, and the upload it created is terminated at once: nothing to resume, no bytes', async () => {
    const uploads = async () => {
      const rows = await sys.db.selectFrom('events').select(['stream', 'type']).where('stream', 'like', 'upload-%').execute();
      const byStream = new Map<string, string[]>();
      for (const e of rows) byStream.set(e.stream, [...(byStream.get(e.stream) ?? []), e.type]);
      return byStream;
    };
    const before = await uploads();
    const socket = net.connect(sys.apiPort, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d));
    socket.on('error', () => undefined);
    socket.write(
      `POST /v1/uploads/ HTTP/1.1\r\nhost: x\r\ntus-resumable: 1.0.0\r\nx-userid: ${user}\r\nupload-length: 4\r\n` +
        'content-type: application/offset+octet-stream\r\ntransfer-encoding: chunked\r\n\r\n' +
        '14\r\nmore than four bytes\r\n0\r\n\r\n',
    );
    await waitFor('an answer', () => text.includes('\r\n\r\n'));
    socket.destroy();
    expect(text).toMatch(/^HTTP\/1.1 413/);
    const fresh = [...(await uploads())].filter(([stream]) => !before.has(stream));
    expect(fresh).toHaveLength(1);
    for (const [, types] of fresh) expect(types).toContain('UploadTerminated');
  });
});
