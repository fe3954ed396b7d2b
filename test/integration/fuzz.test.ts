// Generated bad input at every HTTP route (from the route table), at tus's headers and at NDJSON
// ingest, with the credentials each route wants, so the handlers themselves are tried. What must
// hold for every input: no 5xx but a documented 503, a JSON error that names the field for every
// 400, no event written for a refused request, and the api never exits.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteInfo } from '../../apps/api/access.ts';
import { errorShapeProblems, isCanWatchRoute, jsonOf, rawRequest, type RawResponse } from '../support/http.ts';
import { routeTable } from '../support/routes.ts';
import { System } from '../support/system.ts';
import { newUserId } from '../support/uploads.ts';
import { fingerprint } from '../../apps/api/search.ts';

let sys: System;
let table: RouteInfo[];
const user = newUserId();
let stationKey = '';
let upload = '';

beforeAll(async () => {
  sys = await System.create();
  await sys.start('api');
  table = await routeTable(sys.env);
  stationKey = await sys.stationKey('fuzz');
  upload = (
    await rawRequest(sys.apiPort, 'POST', '/v1/uploads/', { 'tus-resumable': '1.0.0', 'upload-length': '100', 'x-userid': user })
  ).headers
    .location!.split('/')
    .pop()!;
});
afterAll(() => sys?.stop());

/** Everything written anywhere: decided events and captions on the log. */
async function written(): Promise<number> {
  return (await sys.eventCount()) + (await sys.captionsInLog());
}

const credentialsFor = (r: RouteInfo): Record<string, string> =>
  ({
    public: {},
    station: { authorization: `Bearer ${stationKey}` },
    admin: { authorization: 'Bearer test-admin-token' },
    user: { 'x-userid': user },
  })[r.access];

const nasty = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    ' ',
    '..',
    '.',
    '%',
    '%00',
    '%ZZ',
    '%F0%9F',
    '\u0000',
    '-1',
    '1e999',
    'NaN',
    'null',
    '[]',
    '{}',
    '0:-2',
    '99999999:1',
    '1:99999999999999999999',
    'a'.repeat(300),
    '\u{1F600}'.repeat(80),
    '\uD800',
    '<script>',
    "' OR 1=1 --",
    '${7*7}',
  ),
  fc.integer().map(String),
  fc.double().map(String),
);

const contentTypes = fc.constantFrom(
  'application/json',
  'APPLICATION/JSON',
  'application/json; charset=utf-8',
  'application/x-ndjson',
  'APPLICATION/X-NDJSON',
  'text/plain',
  'application/offset+octet-stream',
  'multipart/form-data; boundary=x',
  '',
  'application/json; charset=latin1',
  'application/*',
);

const bodies = fc.oneof(
  fc.json().map((s) => Buffer.from(s)),
  fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v))),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc
    .record({ seq: fc.anything(), text: fc.anything(), start: fc.anything(), end: fc.anything(), lang: fc.anything(), mode: fc.anything() })
    .map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc
    .record({
      uploadId: nasty,
      options: fc.dictionary(fc.constantFrom('preset', 'qp', 'container', 'logo', 'width', 'height', 'fps', 'x'), fc.jsonValue()),
    })
    .map((v) => Buffer.from(JSON.stringify(v))),
  fc.record({ limit: fc.jsonValue(), sha256: nasty }).map((v) => Buffer.from(JSON.stringify(v))),
  fc.constantFrom('{', '[', '"', '{"a":', '\uFEFF{}', '['.repeat(5000), '{"__proto__":{"x":1}}', 'null', '[]').map((s) => Buffer.from(s)),
  fc.constant(Buffer.from([0xff, 0xfe, 0x00, 0xc3, 0x28])),
);

const queries = fc.dictionary(
  fc.constantFrom('q', 'from', 'to', 'after', 'limit', 'channel', 'lang', 'preset', 'x', 'token', 'since'),
  nasty,
  { maxKeys: 4 },
);

interface Outcome {
  problems: string[];
}

/** Checks one answer; returns what is wrong with it. */
async function judge(what: string, res: RawResponse, before: number, method: string, canWatch: boolean): Promise<string[]> {
  const problems: string[] = [];
  if (method === 'HEAD') {
    // A HEAD answer has no body to carry an error; its status still must not be a 5xx.
    if (res.status >= 500 && res.status !== 503) problems.push(`${what} -> ${res.status}`);
    if (res.status >= 400 && (await written()) !== before) problems.push(`${what} -> ${res.status}, but something was written`);
    return problems;
  }
  if (res.status >= 500 && res.status !== 503) problems.push(`${what} -> ${res.status} ${res.body.slice(0, 200)}`);
  if (res.status >= 400) {
    const contentType = res.headers['content-type'];
    problems.push(...errorShapeProblems(res.status, contentType, res.body, canWatch).map((p) => `${what} -> ${p}`));
  }
  if (res.status >= 400 && (await written()) !== before) problems.push(`${what} -> ${res.status}, but something was written`);
  return problems;
}

const fill = (url: string, params: string[]) => {
  let i = 0;
  // Percent-encoded bytes of the UTF-8 (a lone surrogate becomes U+FFFD, as a browser would send).
  const encode = (p: string) =>
    [...Buffer.from(p)]
      .map((b) => (/[A-Za-z0-9._~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`))
      .join('');
  return url.replace(/:[A-Za-z]+/g, () => encode(params[i++ % params.length]!));
};

describe('generated bad input', () => {
  it('at every route: never a 5xx but 503, always the documented error shape naming the field, nothing written', async () => {
    const outcome: Outcome = { problems: [] };
    let tried = 0;
    for (const r of table.filter((x) => x.method !== 'OPTIONS')) {
      await fc.assert(
        fc.asyncProperty(
          fc.array(nasty, { minLength: 1, maxLength: 2 }),
          queries,
          contentTypes,
          bodies,
          async (params, query, contentType, body) => {
            const qs = new URLSearchParams(query).toString();
            const target = `${fill(r.url, params)}${qs ? `?${qs}` : ''}`;
            const before = await written();
            const sendsBody = !['GET', 'HEAD', 'DELETE'].includes(r.method);
            const res = await rawRequest(
              sys.apiPort,
              r.method,
              target,
              { ...credentialsFor(r), ...(contentType ? { 'content-type': contentType } : {}), 'tus-resumable': '1.0.0' },
              sendsBody ? body : undefined,
            );
            tried++;
            outcome.problems.push(
              ...(await judge(`${r.method} ${target} (${contentType})`, res, before, r.method, isCanWatchRoute(r.url))),
            );
          },
        ),
        { numRuns: 25, seed: 42, endOnFailure: true },
      );
    }
    console.log(`fuzz: ${tried} requests over ${table.length} routes`);
    expect(outcome.problems).toEqual([]);
    expect((await rawRequest(sys.apiPort, 'GET', '/healthz')).status).toBe(200);
  }, 600_000);

  it('at search: operators and crafted cursors are 200 or a 400 naming q or after', async () => {
    const problems: string[] = [];
    const q = fc
      .array(fc.constantFrom('-', 'a', 'b', ' ', '"', 'or', 'OR', '|', '!', '&', ':', '*', '(', ')', '<->', '\\', "'", 'the', '-a', '--'), {
        minLength: 1,
        maxLength: 150,
      })
      .map((parts) => parts.join(''));
    const number = fc.oneof(
      fc.constantFrom(
        '1e999',
        '1e38',
        '3.5e38',
        '0',
        '-1',
        '1'.repeat(41),
        '0.1',
        'NaN',
        '1e-999',
        '9'.repeat(20),
        '2147483648',
        '9007199254740993',
      ),
      fc.double().map(String),
    );
    const cursorPart = fc.oneof(number, number.map(Number), fc.integer(), fc.constant(null), fc.constant(2 ** 31), fc.constant(-2));
    await fc.assert(
      fc.asyncProperty(q, fc.option(fc.tuple(number, cursorPart, cursorPart), { nil: undefined }), async (query, cursor) => {
        const trimmed = query.trim();
        const after =
          cursor && Buffer.from(JSON.stringify([...cursor, fingerprint([trimmed, null, null, null, null])])).toString('base64url');
        const qs = new URLSearchParams({ q: query, ...(after ? { after } : {}) }).toString();
        const res = await rawRequest(sys.apiPort, 'GET', `/v1/search?${qs}`);
        const body = jsonOf(res);
        if (res.status === 200) return;
        if (res.status !== 400 || !['q', 'after'].includes(body?.field))
          problems.push(`q=${JSON.stringify(query)} after=${JSON.stringify(cursor)} -> ${res.status} ${res.body.slice(0, 200)}`);
      }),
      { numRuns: 400, seed: 11 },
    );
    expect(problems).toEqual([]);
  }, 300_000);

  it('at tus headers: every refusal is a JSON error naming the header, and changes nothing', async () => {
    const problems: string[] = [];
    const header = fc.oneof(
      nasty,
      fc.base64String(),
      fc.string().map((s) => `filename ${Buffer.from(s).toString('base64')}`),
      fc.constantFrom(
        `filename ${Buffer.from('a\u0000b').toString('base64')}`,
        'sha256 xyz',
        'md5 AAAA',
        'filename',
        'filename ===',
        `filetype ${Buffer.from('x'.repeat(300)).toString('base64')}`,
      ),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('POST', 'PATCH', 'HEAD', 'DELETE'),
        fc.record(
          {
            'upload-length': header,
            'upload-offset': header,
            'upload-metadata': header,
            'upload-checksum': header,
            'upload-defer-length': header,
            'tus-resumable': fc.oneof(fc.constant('1.0.0'), nasty),
          },
          { requiredKeys: [] },
        ),
        fc.uint8Array({ maxLength: 64 }),
        async (method, headers, body) => {
          const before = await written();
          const clean = Object.fromEntries(Object.entries(headers).filter(([, v]) => !/[\u0000-\u001f\u007f-\uffff]/.test(v)));
          const target = method === 'POST' ? '/v1/uploads/' : `/v1/uploads/${upload}`;
          const res = await rawRequest(
            sys.apiPort,
            method,
            target,
            { 'x-userid': user, 'content-type': 'application/offset+octet-stream', ...clean },
            method === 'HEAD' || method === 'DELETE' ? undefined : Buffer.from(body),
          );
          problems.push(...(await judge(`${method} ${JSON.stringify(clean)}`, res, before, method, false)));
        },
      ),
      { numRuns: 300, seed: 7 },
    );
    expect(problems).toEqual([]);
  }, 300_000);

  it('at NDJSON ingest: every line gets an answer, and only acknowledged lines are on the log', async () => {
    const line = fc.oneof(
      fc
        .record({
          seq: fc.nat(),
          text: fc.string({ maxLength: 50 }),
          start: fc.constant(1_700_000_000_000),
          end: fc.constant(1_700_000_001_000),
        })
        .map((v) => JSON.stringify(v)),
      fc
        .record(
          {
            seq: fc.anything(),
            text: fc.anything(),
            start: fc.anything(),
            end: fc.anything(),
            lang: fc.anything(),
            mode: fc.anything(),
            extra: fc.anything(),
          },
          { requiredKeys: [] },
        )
        .map((v) => JSON.stringify(v) ?? 'null'),
      fc.string({ unit: 'binary', maxLength: 80 }),
      nasty,
    );
    let seq = 1;
    await fc.assert(
      fc.asyncProperty(
        fc.array(line, { minLength: 1, maxLength: 30 }),
        fc.constantFrom('application/x-ndjson', 'APPLICATION/X-NDJSON', 'application/x-ndjson; charset=utf-8'),
        async (lines, contentType) => {
          const body = lines.map((l) => l.replace(/"seq":\d+/, () => `"seq":${seq++}`)).join('\n');
          const before = await sys.captionsInLog();
          const res = await rawRequest(
            sys.apiPort,
            'POST',
            '/v1/channels/fuzz/captions',
            { authorization: `Bearer ${stationKey}`, 'content-type': contentType },
            body,
          );
          expect(res.status).toBe(200);
          const answers = res.body
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l));
          const nonBlank = body.split('\n').filter((l) => !/^\s*$/.test(l)).length;
          expect(answers.length).toBe(nonBlank);
          for (const a of answers) expect(typeof a.position === 'string' || typeof a.error === 'string').toBe(true);
          const acked = answers.filter((a) => typeof a.position === 'string').length;
          expect((await sys.captionsInLog()) - before).toBe(acked);
        },
      ),
      { numRuns: 60, seed: 3 },
    );
  }, 300_000);
});
