// The API's documents: /openapi.json is valid OpenAPI 3.1 (swagger-parser) and has every route of
// the route table as an operation with request and response schemas; /asyncapi.json is valid
// AsyncAPI 3.0 (the @asyncapi/specs JSON Schema, Avro payloads included); /docs is served from
// this machine and loads nothing from anywhere else.
import { createRequire } from 'node:module';
import SwaggerParser from '@apidevtools/swagger-parser';
import AjvModule from 'ajv';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteInfo } from '../../apps/api/access.ts';
import { routeTable } from '../support/routes.ts';
import { contractOf } from '../support/contract.ts';
import { System } from '../support/system.ts';

const Ajv = AjvModule as unknown as typeof AjvModule.default;
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;
const specs = createRequire(import.meta.url)('@asyncapi/specs') as { schemas: Record<string, object> };

let sys: System;
let table: RouteInfo[];
let doc: any;

beforeAll(async () => {
  sys = await System.create({ DEV_MAIL_DIR: '/tmp/castlog-openapi-test-mail' });
  await sys.start('api');
  table = await routeTable(sys.env);
  doc = await (await fetch(`${sys.api}/openapi.json`)).json();
});
afterAll(() => sys?.stop());

/** The document's path of a route: {param} for :param, no trailing slash. */
const pathOf = (url: string) => (url.length > 1 ? url.replace(/\/$/, '') : url).replace(/:(\w+)/g, '{$1}');
const NO_BODY = new Set(['204', '304']);

describe('/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).toBe('3.1.0');
    await expect(SwaggerParser.validate(structuredClone(doc))).resolves.toBeTruthy();
  });

  it('has every route as an operation with its path parameters, a summary and documented answers', () => {
    const problems: string[] = [];
    for (const route of table) {
      if (route.method === 'HEAD' && table.some((r) => pathOf(r.url) === pathOf(route.url) && r.method === 'GET')) continue;
      const path = pathOf(route.url);
      const op = doc.paths[path]?.[route.method.toLowerCase()];
      const where = `${route.method} ${route.url}`;
      if (!op) {
        problems.push(`${where}: not in the document`);
        continue;
      }
      if (!op.summary) problems.push(`${where}: no summary`);
      for (const [, name] of path.matchAll(/\{(\w+)\}/g)) {
        if (!op.parameters?.some((p: any) => p.in === 'path' && p.name === name))
          problems.push(`${where}: path parameter ${name} undocumented`);
      }
      const answers = Object.entries(op.responses ?? {}).filter(([status]) => status !== 'default');
      if (answers.length === 0) problems.push(`${where}: no answer documented (only errors)`);
      for (const [status, r] of answers as [string, any][]) {
        const bodiless = NO_BODY.has(status) || route.method === 'HEAD' || route.method === 'OPTIONS';
        if (!bodiless && !Object.values(r.content ?? {}).some((m: any) => m.schema) && !r.headers)
          problems.push(`${where}: ${status} has no schema`);
      }
      if (['POST', 'PUT', 'PATCH'].includes(route.method) && route.access === 'station' && !op.requestBody) {
        problems.push(`${where}: no request body`);
      }
      if (route.method !== 'HEAD' && !op.responses?.default?.content) problems.push(`${where}: no error answer`);
    }
    expect(problems).toEqual([]);
  });

  it('documents request bodies where routes read one, and the security of every group', () => {
    const bodies = ['/v1/alerts', '/v1/encodes', '/v1/encodes/check', '/v1/channels/{channel}/captions', '/v1/unsubscribe'];
    for (const path of bodies) expect(doc.paths[path].post.requestBody, path).toBeDefined();
    expect(doc.paths['/v1/admin/users/{userId}/limit'].put.requestBody).toBeDefined();
    expect(doc.paths['/v1/admin/projections'].get.security).toEqual([{ adminToken: [] }]);
    expect(doc.paths['/v1/channels/{channel}/captions'].post.security).toEqual([{ stationKey: [] }]);
    expect(doc.paths['/v1/alerts'].get.security).toEqual([{ proxyUser: [] }, { userToken: [] }, { adminToken: [] }]);
    expect(doc.paths['/v1/search'].get.security).toEqual([]);
    // tus: each method its own operation, with its headers
    const upload = doc.paths['/v1/uploads/{id}'];
    expect(upload.patch.parameters.map((p: any) => p.name)).toEqual(expect.arrayContaining(['Upload-Offset', 'Tus-Resumable']));
    expect(upload.head.responses['200'].headers['Upload-Offset']).toBeDefined();
    expect(doc.paths['/v1/channels/{channel}/captions'].post.requestBody.content['application/x-ndjson']).toBeDefined();
  });

  it('checks answers: an undocumented status or a body off its schema is caught', () => {
    const contract = contractOf(doc);
    const url = `${sys.api}/healthz`;
    expect(contract.check({ method: 'GET', url, status: 200, contentType: 'application/json', body: '{"status":"ok"}' })).toEqual([]);
    expect(contract.check({ method: 'GET', url, status: 200, contentType: 'application/json', body: '{"status":1}' })).not.toEqual([]);
    expect(contract.check({ method: 'GET', url, status: 200, contentType: 'text/html', body: '<p>' })).not.toEqual([]);
    const problem = '{"type":"about:blank","title":"Not Found","status":404,"detail":"path: x","error":"path: x","field":"path"}';
    expect(
      contract.check({ method: 'GET', url: `${sys.api}/nowhere`, status: 404, contentType: 'application/problem+json', body: problem }),
    ).toEqual([]);
    expect(
      contract.check({ method: 'GET', url: `${sys.api}/nowhere`, status: 404, contentType: 'application/problem+json', body: '{}' }),
    ).not.toEqual([]);
  });
});

describe('/asyncapi.json', () => {
  it('is a valid AsyncAPI 3.0 document, Avro payloads included', async () => {
    const asyncapi = await (await fetch(`${sys.api}/asyncapi.json`)).json();
    // The spec's JSON Schema carries its own copy of the draft-07 meta-schema.
    const ajv = new Ajv({ strict: false, allErrors: true, meta: false, validateSchema: false });
    addFormats(ajv);
    const validate = ajv.compile(specs.schemas['3.0.0']!);
    expect(validate(asyncapi), ajv.errorsText(validate.errors)).toBe(true);
    expect(Object.keys(asyncapi.channels)).toEqual(expect.arrayContaining(['live', 'captions', 'streams', 'uploads', 'encodes', 'alerts']));
    expect(asyncapi.components.messages.CaptionFragmentReceivedV1.payload.schemaFormat).toBe('application/vnd.apache.avro;version=1.9.0');
    expect(Object.keys(asyncapi.channels.live.messages)).toEqual(
      expect.arrayContaining(['subscribe', 'unsubscribe', 'replay', 'caption', 'userEvent', 'batch', 'error']),
    );
  });
});

describe('/docs', () => {
  it('is served from here, with a policy and assets that name no other origin', async () => {
    const page = await fetch(`${sys.api}/docs/`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toMatch(/https?:|\*/);
    const html = await page.text();
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(3);
    for (const asset of assets) {
      const r = await fetch(new URL(asset, `${sys.api}/docs/`));
      expect(r.status, asset).toBe(200);
      await r.arrayBuffer();
    }
    const init = await (await fetch(`${sys.api}/docs/static/swagger-initializer.js`)).text();
    expect(init).toContain('validatorUrl: null');
    expect((await fetch(`${sys.api}/docs/json`)).status).toBe(200);
  });
});
