// The API's documents as a contract the integration tests check: every HTTP answer an API process
// gives through the shared helpers (fetch, rawRequest, System) must be documented in its
// /openapi.json (the path and method, the status, the media type) and its JSON body must match the
// schema; every frame a LiveClient receives must be one of /asyncapi.json's server messages.
// Failures are collected here and fail the test they happened in (contract-setup.ts).
import AjvModule, { type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { asyncApiDocument } from '../../apps/api/asyncapi.ts';
import { SchemaRegistry } from '../../schemas/registry.ts';

const Ajv = AjvModule as unknown as typeof AjvModule.default;
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

type Json = Record<string, any>;

interface Operation {
  responses: Record<string, { content?: Record<string, { schema?: Json }> }>;
}

export interface Answer {
  method: string;
  url: string;
  status: number;
  contentType: string | undefined;
  /** The body when it is JSON (read), undefined when it was not read. */
  body?: string;
}

const failures: string[] = [];
const pending = new Set<Promise<unknown>>();
const documents = new Map<string, () => Promise<Contract>>();
const originalFetch = globalThis.fetch.bind(globalThis);

const newAjv = () => {
  const ajv = new Ajv({ strict: false, allErrors: false, validateFormats: true });
  addFormats(ajv);
  return ajv;
};

/** One API's document, with compiled validators. */
class Contract {
  private readonly ajv = newAjv();
  private readonly validators = new Map<Json, ValidateFunction>();
  private readonly templates: { template: string; re: RegExp; params: number }[];

  constructor(private readonly doc: Json) {
    this.templates = Object.keys(doc.paths)
      .map((template) => ({
        template,
        re: new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]*')}/?$`),
        params: (template.match(/\{/g) ?? []).length,
      }))
      .sort((a, b) => a.params - b.params);
  }

  private validator(schema: Json): ValidateFunction {
    let v = this.validators.get(schema);
    if (!v) {
      v = this.ajv.compile({ ...schema, components: this.doc.components });
      this.validators.set(schema, v);
    }
    return v;
  }

  /** What is wrong with an answer; empty when it is as documented. */
  check(a: Answer): string[] {
    const path = decodeURI(new URL(a.url, 'http://x').pathname);
    const method = a.method.toLowerCase();
    // The most literal path that has the method (fastify routes an empty parameter too: "/streams//activate").
    const items = this.templates.filter((t) => t.re.test(path)).map((t) => this.doc.paths[t.template] as Record<string, Operation>);
    const item = items.find((i) => i[method] ?? (method === 'head' ? i.get : undefined));
    const op = item?.[method] ?? (method === 'head' ? item?.get : undefined);
    const where = `${a.method} ${path} → ${a.status}`;
    if (!op) {
      // Not an operation: the answer must be the documented error of an unknown path or method.
      if (a.status >= 400 && a.status < 500) return this.body(where, a, { content: this.problemContent() });
      return [`${where}: no such operation in /openapi.json`];
    }
    const s = String(a.status);
    const response = op.responses[s] ?? op.responses[`${s[0]}XX`] ?? op.responses.default;
    if (!response) return [`${where}: status not documented`];
    const type = a.contentType?.split(';')[0]!.trim().toLowerCase();
    // An error of a status documented for another media type is still the documented error.
    if (type && response.content && !response.content[type] && op.responses.default?.content?.[type] && a.status >= 400) {
      return this.body(where, a, op.responses.default);
    }
    return this.body(where, a, response);
  }

  private problemContent() {
    return { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } };
  }

  private body(where: string, a: Answer, response: { content?: Record<string, { schema?: Json }> }): string[] {
    const type = a.contentType?.split(';')[0]!.trim().toLowerCase();
    if (a.method === 'HEAD' || a.status === 204 || a.status === 304) return [];
    if (!response.content) return a.body ? [`${where}: a body (${type}) where none is documented`] : [];
    if (!type) return a.body ? [`${where}: a body without a content-type`] : [];
    const media = response.content[type] ?? response.content['*/*'];
    if (!media) return [`${where}: ${type} is not documented (${Object.keys(response.content).join(', ')})`];
    if (a.body === undefined || !media.schema || !/json$/.test(type)) return [];
    let value: unknown;
    try {
      value = JSON.parse(a.body);
    } catch {
      return [`${where}: not JSON: ${a.body.slice(0, 200)}`];
    }
    const validate = this.validator(media.schema);
    if (validate(value)) return [];
    return [`${where}: body does not match its schema: ${this.ajv.errorsText(validate.errors)}: ${a.body.slice(0, 300)}`];
  }
}

/** Checks the answers of the API at `base` from now on. */
export function watchApi(base: string): void {
  const origin = new URL(base).origin;
  if (documents.has(origin)) return;
  // Fetched when the first answer needs it: the API serves its own document.
  let loading: Promise<Contract> | undefined;
  documents.set(
    origin,
    () =>
      (loading ??= originalFetch(`${origin}/openapi.json`)
        .then((r) => r.json())
        .then((doc) => new Contract(doc as Json))),
  );
}

function track(work: Promise<void>): void {
  const p = work.catch((err) => void failures.push(`contract check failed: ${(err as Error).message}`));
  pending.add(p);
  void p.finally(() => pending.delete(p));
}

/** Checks one answer of a watched API (an answer of anything else is left alone). */
export function checkAnswer(a: Answer): void {
  let origin: string;
  try {
    origin = new URL(a.url).origin;
  } catch {
    return;
  }
  const contract = documents.get(origin);
  if (!contract) return;
  track(
    contract().then((c) => {
      failures.push(...c.check(a));
    }),
  );
}

const isJson = (type: string | null | undefined) => !!type && /^application\/([\w.+-]+\+)?json\b/i.test(type);

/** fetch, checking what watched APIs answer. JSON bodies are read from a clone; streams are left to the test. */
export const checkedFetch: typeof fetch = async (input, init) => {
  const res = await originalFetch(input, init);
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
  if (!documents.has(new URL(url).origin)) return res;
  const contentType = res.headers.get('content-type') ?? undefined;
  if (isJson(contentType) && method !== 'HEAD') {
    const copy = res.clone();
    track(copy.text().then((body) => checkAnswer({ method, url: res.url || url, status: res.status, contentType, body })));
  } else {
    checkAnswer({ method, url: res.url || url, status: res.status, contentType, body: undefined });
  }
  return res;
};

let frameValidator: ValidateFunction | undefined;

/**
 * The frame check, compiled once. Live clients ask for it before they connect: compiled on the
 * first frame, it would hold that frame back by the compile's time and skew what tests time.
 */
export function frameCheck(): ValidateFunction {
  if (!frameValidator) {
    const doc = asyncApiDocument(SchemaRegistry.load()) as Json;
    const server = Object.entries(doc.components.messages as Json)
      .filter(([id]) => id.startsWith('Server'))
      .map(([, m]) => (m as Json).payload);
    frameValidator = newAjv().compile({ anyOf: server });
  }
  return frameValidator;
}

/** Checks a frame a live client received against the AsyncAPI document's server messages. */
export function checkFrame(text: string): void {
  const valid = frameCheck();
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    failures.push(`live frame is not JSON: ${text.slice(0, 200)}`);
    return;
  }
  if (!valid(frame)) failures.push(`live frame is not a documented server message: ${text.slice(0, 300)}`);
}

/** Waits for the checks under way and hands over (and forgets) the failures so far. */
export async function takeFailures(): Promise<string[]> {
  const deadline = Date.now() + 5000;
  while (pending.size > 0 && Date.now() < deadline)
    await Promise.race([Promise.allSettled([...pending]), new Promise((r) => setTimeout(r, 200))]);
  return failures.splice(0);
}

/** For the contract's own tests: a document to check answers against. */
export const contractOf = (doc: Json) => new Contract(doc);
