// Who may call what, tried on every route of the route table (a new route is covered by default)
// with every kind of credential and many spellings of its URL. Authorization belongs to the route
// (its group's hook), so no spelling that reaches a handler may skip the check: expected, 0
// unauthorized successes. Positive controls show every route is really reached.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteInfo } from '../../apps/api/access.ts';
import { UserTokens } from '../../infra/user-tokens.ts';
import { jsonOf, rawRequest, type RawResponse } from '../support/http.ts';
import { routeTable } from '../support/routes.ts';
import { System, USER_TOKEN_SECRET } from '../support/system.ts';
import { newUserId } from '../support/uploads.ts';
import { removeStation } from '../../infra/stations.ts';

let sys: System;
let table: RouteInfo[];
const A = newUserId();
const B = newUserId();
const fixtures = { upload: '', stream: '', job: newUserId(), station: '', revoked: '' };
const tokens = new UserTokens(USER_TOKEN_SECRET, 3600);
const creds: Record<string, Record<string, string>> = {};

beforeAll(async () => {
  sys = await System.create();
  await sys.start('api');
  table = await routeTable(sys.env);
  fixtures.station = await sys.stationKey('matrix-station');
  fixtures.revoked = await sys.stationKey('matrix-revoked');
  await removeStation(sys.db, 'matrix-revoked');
  const created = await rawRequest(sys.apiPort, 'POST', '/v1/uploads/', {
    'tus-resumable': '1.0.0',
    'upload-length': '1000',
    'x-userid': A,
  });
  fixtures.upload = created.headers.location!.split('/').pop()!;
  fixtures.stream = jsonOf(await rawRequest(sys.apiPort, 'GET', '/streams/newId')).streamId;
  const a = (await tokens.issue(A)).token;
  const b = (await tokens.issue(B)).token;
  const [head, , sig] = a.split('.');
  const bPayload = b.split('.')[1];
  Object.assign(creds, {
    none: {},
    'wrong bearer': { authorization: 'Bearer not-a-credential' },
    'not bearer': { authorization: `Basic ${Buffer.from('admin:test-admin-token').toString('base64')}` },
    'empty bearer': { authorization: 'Bearer ' },
    'station key': { authorization: `Bearer ${fixtures.station}` },
    'revoked station key': { authorization: `Bearer ${fixtures.revoked}` },
    'admin token': { authorization: 'Bearer test-admin-token' },
    'admin token, other case': { authorization: 'Bearer TEST-ADMIN-TOKEN' },
    'user A (proxy)': { 'x-userid': A },
    'user A (token)': { authorization: `Bearer ${a}` },
    'user B (proxy)': { 'x-userid': B },
    'user B (token)': { authorization: `Bearer ${b}` },
    'forged token': { authorization: `Bearer ${(await new UserTokens('another-secret-of-at-least-32-bytes!', 3600).issue(A)).token}` },
    'altered token': { authorization: `Bearer ${head}.${bPayload}.${sig}` },
    'expired token': { authorization: `Bearer ${(await tokens.issue(A, Date.now() - 2 * 3600_000)).token}` },
    'A token, B x-userid': { authorization: `Bearer ${a}`, 'x-userid': B },
    'B token, A x-userid': { authorization: `Bearer ${b}`, 'x-userid': A },
    'forged token, A x-userid': { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', 'x-userid': A },
    'malformed x-userid': { 'x-userid': `${A}x` },
  });
});
afterAll(() => sys?.stop());

/** The route's path with its parameters filled with fixtures of user A. */
function pathOf(url: string): string {
  return url
    .replace(':channel', 'matrix')
    .replace(':userId', A)
    .replace(':id', fixtures.upload)
    .replace(':jobId', fixtures.job)
    .replace(':streamId', fixtures.stream)
    .replace(':name', 'captions')
    .replace(':fingerprint', '0000000000000000');
}

/** A route names something of A's (in its path or body); elsewhere user B acts for themself. */
const ownedByA = (r: RouteInfo) =>
  /:userId|:id|:jobId/.test(r.url) || (r.url === '/v1/encodes' && r.method === 'POST') || (r.url === '/v1/encodes/' && r.method === 'POST');

/** Who is allowed, per group. */
function allowed(r: RouteInfo, cred: string): boolean {
  switch (r.access) {
    case 'public':
      return true;
    case 'station':
      return cred === 'station key';
    case 'admin':
      return cred === 'admin token';
    case 'user':
      return (
        ['user A (proxy)', 'user A (token)', 'admin token'].includes(cred) ||
        (!ownedByA(r) && ['user B (proxy)', 'user B (token)'].includes(cred))
      );
  }
}

/** Headers and body a request to the route plausibly carries (its content is not what is tested). */
function requestFor(r: RouteInfo): { headers: Record<string, string>; body?: string } {
  const json = (v: unknown) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(v) });
  if (r.url.startsWith('/v1/uploads')) {
    const tus = { 'tus-resumable': '1.0.0' };
    if (r.method === 'POST') return { headers: { ...tus, 'upload-length': '10' } };
    if (r.method === 'PATCH')
      return { headers: { ...tus, 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' }, body: 'abc' };
    return { headers: tus };
  }
  if (r.url.endsWith('/captions') && r.method === 'POST') return json({ seq: 1, text: 'matrix', start: 1, end: 2 });
  if (r.url === '/v1/encodes/check') return json({ sha256: '0'.repeat(64) });
  if (r.url.startsWith('/v1/encodes') && r.method === 'POST') return json({ uploadId: fixtures.upload });
  if (r.url.endsWith('/limit')) return json({ limit: 2 });
  if (['POST', 'PUT', 'PATCH'].includes(r.method)) return json({});
  return { headers: {} };
}

/** Ways to write the same path that a careless check would not recognise. */
export function spellings(path: string, port: number): string[] {
  const out = new Set<string>([path]);
  const segs = path.split('/');
  segs.forEach((seg, i) => {
    if (!seg) return;
    const c = seg.charCodeAt(0);
    for (const hex of [c.toString(16).toUpperCase(), c.toString(16)])
      out.add([...segs.slice(0, i), `%${hex}${seg.slice(1)}`, ...segs.slice(i + 1)].join('/'));
    out.add([...segs.slice(0, i), seg.toUpperCase(), ...segs.slice(i + 1)].join('/'));
    out.add(`${segs.slice(0, i).join('/')}//${segs.slice(i).join('/')}`);
    out.add(`${segs.slice(0, i).join('/')}/./${segs.slice(i).join('/')}`);
    out.add(`${segs.slice(0, i).join('/')}/x/../${segs.slice(i).join('/')}`);
  });
  out.add(`${path}/`);
  out.add(path.toUpperCase());
  out.add(`http://x${path}`);
  out.add(`http://127.0.0.1:${port}${path}`);
  out.add(`/${segs.slice(1).join('%2F')}`);
  out.add(`${path}?x=/v1/channels`);
  out.add(`${path};x=1`);
  out.add(`${path}%00`);
  out.add(`${path}#admin`);
  return [...out];
}

describe('the route table', () => {
  it('puts every route in a group', () => {
    expect(table.length).toBeGreaterThan(30);
    for (const r of table) expect(['public', 'station', 'user', 'admin'], `${r.method} ${r.url}`).toContain(r.access);
    const of = (method: string, url: string) => table.find((r) => r.method === method && r.url === url)?.access;
    expect(of('GET', '/v1/admin/projections')).toBe('admin');
    expect(of('POST', '/v1/channels/:channel/captions')).toBe('station');
    expect(of('GET', '/v1/channels/:channel/captions')).toBe('public');
    expect(of('GET', '/v1/users/:userId/streams')).toBe('user');
    expect(of('PATCH', '/streams/:streamId/activate')).toBe('user');
  });
});

describe('every protected route × every credential × every spelling', () => {
  it('has no unauthorized success', async () => {
    const protectedRoutes = table.filter((r) => r.access !== 'public' && r.method !== 'OPTIONS');
    const successes: string[] = [];
    let tried = 0;
    for (const r of protectedRoutes) {
      const { headers, body } = requestFor(r);
      for (const [cred, credHeaders] of Object.entries(creds)) {
        if (allowed(r, cred)) continue;
        for (const target of spellings(pathOf(r.url), sys.apiPort)) {
          const res: RawResponse = await rawRequest(sys.apiPort, r.method, target, { ...headers, ...credHeaders }, body);
          tried++;
          if (res.status >= 200 && res.status < 300)
            successes.push(`${cred}: ${r.method} ${target} -> ${res.status} ${res.body.slice(0, 120)}`);
          if (res.status >= 500) successes.push(`${cred}: ${r.method} ${target} -> ${res.status} (a 5xx) ${res.body.slice(0, 120)}`);
        }
      }
    }
    console.log(`auth matrix: ${protectedRoutes.length} protected routes, ${tried} unauthorized requests`);
    expect(tried).toBeGreaterThan(2000);
    expect(successes).toEqual([]);
  }, 300_000);

  it('lets every allowed caller through its route (positive controls)', async () => {
    const refused: string[] = [];
    // Last: some of these change A's things (a PATCH, a DELETE of the upload).
    for (const r of table.filter((x) => x.access !== 'public' && x.method !== 'OPTIONS')) {
      const { headers, body } = requestFor(r);
      for (const [cred, credHeaders] of Object.entries(creds)) {
        if (!allowed(r, cred)) continue;
        const res = await rawRequest(sys.apiPort, r.method, pathOf(r.url), { ...headers, ...credHeaders }, body);
        if (res.status === 401 || res.status === 403 || res.status >= 500)
          refused.push(`${cred}: ${r.method} ${r.url} -> ${res.status} ${res.body.slice(0, 160)}`);
      }
    }
    expect(refused).toEqual([]);
  }, 120_000);
});

describe('refusals name the field', () => {
  it.each([
    ['none', 'GET', '/v1/admin/projections', 401, 'authorization'],
    ['user A (token)', 'GET', '/v1/admin/projections', 401, 'authorization'],
    ['A token, B x-userid', 'GET', `/v1/users/${A}/streams`, 401, 'x-userid'],
    ['B token, A x-userid', 'GET', `/v1/users/${A}/streams`, 401, 'x-userid'],
    ['forged token', 'GET', `/v1/users/${A}/streams`, 401, 'authorization'],
    ['expired token', 'GET', `/v1/users/${A}/streams`, 401, 'authorization'],
    ['user B (proxy)', 'GET', `/v1/users/${A}/streams`, 403, 'userId'],
    ['revoked station key', 'POST', '/v1/channels/matrix/captions', 401, 'authorization'],
    ['malformed x-userid', 'GET', `/v1/users/${A}/streams`, 400, 'x-userid'],
  ])('%s: %s %s is %i naming %s', async (cred, method, path, status, field) => {
    const res = await rawRequest(
      sys.apiPort,
      method,
      path,
      { ...creds[cred], 'content-type': 'application/json' },
      method === 'POST' ? '{}' : undefined,
    );
    expect(res.status, res.body).toBe(status);
    expect(jsonOf(res)).toMatchObject({ field, error: expect.stringMatching(new RegExp(`^${field}: `)) });
  });

  it("A's own token alone shows A's streams", async () => {
    const res = await rawRequest(sys.apiPort, 'GET', `/v1/users/${A}/streams`, creds['user A (token)']);
    expect([200, 404]).toContain(res.status); // 404 until A's first activation reaches the read model
    expect(res.status === 404 ? jsonOf(res).field : 'ok').not.toBe('authorization');
  });
});
