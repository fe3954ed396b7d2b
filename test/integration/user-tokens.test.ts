// Signed user tokens: where the trusted proxy cannot set x-userid (a browser's WebSocket, a client
// talking to castlog directly), a token from POST /v1/users/{id}/token names the user.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { UserTokens } from '../../infra/user-tokens.ts';
import { LiveClient, System, USER_TOKEN_SECRET, waitFor } from '../support/system.ts';
import { idOf, newUserId, tusUpload } from '../support/uploads.ts';

let sys: System;
beforeAll(async () => {
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('relay'), sys.start('fanout')]);
});
afterAll(() => sys?.stop());

async function tokenFor(userId: string, headers: Record<string, string>) {
  const r = await fetch(`${sys.api}/v1/users/${userId}/token`, { method: 'POST', headers });
  return { status: r.status, body: (await r.json()) as any, cacheControl: r.headers.get('cache-control') };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The status and JSON body of a WebSocket upgrade the server refused. */
function refusedUpgrade(url: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    ws.once('error', () => undefined);
  });
}

describe('issuing', () => {
  it('gives a user their own token, through the proxy or as the admin, and nobody else one', async () => {
    const user = newUserId();
    const own = await tokenFor(user, { 'x-userid': user });
    expect(own.status).toBe(201);
    expect(own.body).toMatchObject({
      userId: user,
      token: expect.stringMatching(/^[\w-]+\.[\w-]+\.[\w-]+$/),
      expiresAt: expect.any(Number),
    });
    expect(own.body.expiresAt - Date.now()).toBeGreaterThan(3000_000); // an hour by default
    expect(own.cacheControl).toBe('no-store');
    // A token still valid gets its holder a fresh one.
    expect((await tokenFor(user, bearer(own.body.token))).status).toBe(201);
    expect((await tokenFor(user, { authorization: 'Bearer test-admin-token' })).status).toBe(201);

    const cases: [string, Record<string, string>, number, string | undefined][] = [
      [user, { 'x-userid': newUserId() }, 403, 'userId'],
      [user, bearer((await tokenFor(newUserId(), { authorization: 'Bearer test-admin-token' })).body.token), 403, 'userId'],
      [user, {}, 400, 'x-userid'],
      ['not-a-uuid', { 'x-userid': user }, 400, 'userId'],
      [user, { authorization: 'Bearer wrong-admin-token' }, 401, 'authorization'],
    ];
    for (const [who, headers, status, field] of cases) {
      const r = await tokenFor(who, headers);
      expect(r.status, JSON.stringify([who, headers, r.body])).toBe(status);
      expect(r.body.field).toBe(field);
    }
  });
});

describe('using one', () => {
  it('uploads, reads and is refused exactly as x-userid would be', async () => {
    const user = newUserId();
    const { token } = (await tokenFor(user, { 'x-userid': user })).body;
    const url = await tusUpload(sys.api, Buffer.alloc(4096, 7), {
      userId: user,
      filename: 'token.yuv',
      headers: bearer(token),
      chunkSize: 1000,
    });
    const id = idOf(url);

    const mine = await fetch(`${sys.api}/v1/uploads/${id}`, { headers: bearer(token) });
    expect(mine.status).toBe(200);
    expect(await mine.json()).toMatchObject({ uploadId: id, status: 'completed', length: 4096 });
    // The same upload through the proxy's header: the same user.
    expect((await fetch(`${sys.api}/v1/uploads/${id}`, { headers: { 'x-userid': user } })).status).toBe(200);

    const someoneElse = (await tokenFor(newUserId(), { authorization: 'Bearer test-admin-token' })).body.token;
    const [head, payload, signature] = token.split('.');
    const forgedPayload = Buffer.from(JSON.stringify({ sub: newUserId(), iss: 'castlog', exp: 9e9 })).toString('base64url');
    const forged = `${head}.${forgedPayload}.${signature}`;
    const expired = (await new UserTokens(USER_TOKEN_SECRET, 60).issue(user, Date.now() - 3600_000)).token;
    const otherKey = (await new UserTokens('another-secret-that-is-also-32-bytes-long', 60).issue(user)).token;
    const cases: [Record<string, string>, number, string, RegExp][] = [
      [bearer(someoneElse), 404, 'uploadId', /no upload/],
      [bearer(forged), 401, 'authorization', /not a valid user token/],
      [bearer(`${head}.${payload}.${'A'.repeat(signature!.length)}`), 401, 'authorization', /not a valid user token/],
      [bearer(expired), 401, 'authorization', /expired/],
      [bearer(otherKey), 401, 'authorization', /not a valid user token/],
      [{ ...bearer(token), 'x-userid': newUserId() }, 401, 'x-userid', /another user/],
    ];
    for (const [headers, status, field, message] of cases) {
      const r = await fetch(`${sys.api}/v1/uploads/${id}`, { headers });
      const body = (await r.json()) as any;
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(body.field).toBe(field);
      expect(body.error).toMatch(message);
    }
    // Nothing was changed by the refused ones: the upload is still whole and its owner's.
    expect(await (await fetch(`${sys.api}/v1/uploads/${id}`, { headers: bearer(token) })).json()).toMatchObject({
      status: 'completed',
      offset: 4096,
    });
  });

  it("opens the owner's user channel on the fanout with ?token=, where a browser cannot send x-userid", async () => {
    const user = newUserId();
    const { token } = (await tokenFor(user, { 'x-userid': user })).body;
    const live = await LiveClient.connect(`${sys.live}?token=${token}`);
    const anonymous = await LiveClient.connect(sys.live);
    try {
      live.subscribe(`user:${user}`);
      anonymous.subscribe(`user:${user}`);
      await live.waitFor('subscribed', `user:${user}`);
      expect(await anonymous.waitFor('error')).toMatchObject({ code: 'forbidden' });

      const created = await fetch(`${sys.api}/v1/uploads/`, {
        method: 'POST',
        headers: {
          'tus-resumable': '1.0.0',
          ...bearer(token),
          'upload-length': '10',
          'upload-metadata': `filename ${Buffer.from('x.yuv').toString('base64')}`,
        },
      });
      expect(created.status).toBe(201);
      const event = await waitFor('UploadCreated on the user channel', () =>
        live.messages.find((m) => m.type === 'event' && m.event === 'UploadCreated'),
      );
      expect(event).toMatchObject({ channel: `user:${user}`, data: { userId: user, uploadId: idOf(created.headers.get('location')!) } });
      // Sent to every subscriber at once: had anonymous been let in, its copy would be in before this marker.
      await anonymous.barrier();
      expect(anonymous.messages.filter((m) => m.type === 'event')).toEqual([]);
    } finally {
      live.close();
      anonymous.close();
    }

    const expired = (await new UserTokens(USER_TOKEN_SECRET, 60).issue(user, Date.now() - 3600_000)).token;
    expect(await refusedUpgrade(`${sys.live}?token=${expired}`)).toEqual({
      status: 401,
      body: { error: 'token: the token has expired', field: 'token' },
    });
    expect(await refusedUpgrade(`${sys.live}?token=nonsense`)).toMatchObject({ status: 401, body: { field: 'token' } });
  });
});
