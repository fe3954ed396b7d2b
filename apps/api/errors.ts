// Every error of every route, mapped to HTTP in this one place, in one shape: an RFC 9457 problem
// (application/problem+json) whose "error" repeats "detail" and whose "field" names the input at
// fault — every 4xx has one:
//   {"type":"about:blank","title":"Bad Request","status":400,"detail":"<field>: <problem>",
//    "error":"<field>: <problem>","field":"<field>"}
// canWatch's routes keep canWatch's own shape, {"status":"ko","error":…,"field":…} as JSON.
// Domain rules broken are 4xx; a store or Kafka out of reach is 503 "unavailable"; too much at
// once is 503 "busy" with Retry-After — an overload is told apart from an outage.
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../../domain/decider.ts';
import { CallerRefused } from '../../infra/caller.ts';
import { isStatementTimeout, isUnreachable } from '../../infra/db.ts';
import { EventStoreUnavailable } from '../../infra/eventstore/port.ts';
import { Overloaded } from '../../infra/gate.ts';
import { KafkaUnavailable, TopicMissing } from '../../infra/kafka/index.ts';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly field?: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const badRequest = (field: string, problem: string) => new HttpError(400, `${field}: ${problem}`, field);

/** The answer an error gets. */
export interface HttpAnswer {
  statusCode: number;
  body: { error: string; field?: string } & Record<string, unknown>;
  headers: Record<string, string>;
}

const DOMAIN_STATUS = { not_found: 404, conflict: 409, invalid: 400 } as const;
/** A domain error's message starts with the field at fault ("options.qp: ..."). */
const fieldOf = (message: string) => /^([\w.[\]-]+): /.exec(message)?.[1];

const answer = (
  statusCode: number,
  error: string,
  field?: string,
  headers: Record<string, string> = {},
  extra: Record<string, unknown> = {},
): HttpAnswer => ({
  statusCode,
  body: { error, ...(field ? { field } : {}), ...extra },
  headers,
});

export const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

/** The RFC 9457 body of an error: for the places that answer outside fastify's reply. */
export function problemBody(statusCode: number, error: string, field?: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    type: 'about:blank',
    title: STATUS_CODES[statusCode] ?? 'Error',
    status: statusCode,
    detail: error,
    error,
    ...(field ? { field } : {}),
    ...extra,
  });
}

export function answerOf(err: unknown): HttpAnswer {
  if (err instanceof HttpError) return answer(err.statusCode, err.message, err.field, err.headers, err.extra);
  if (err instanceof CallerRefused) return answer(err.statusCode, err.message, err.field);
  if (err instanceof DomainError) return answer(DOMAIN_STATUS[err.kind], err.message, fieldOf(err.message));
  if (err instanceof Overloaded) return answer(503, err.message, undefined, { 'retry-after': String(err.retryAfterSeconds) });
  if (err instanceof EventStoreUnavailable) return answer(503, 'Service Unavailable', undefined, { 'retry-after': '1' });
  if (err instanceof KafkaUnavailable)
    return answer(503, 'Service Unavailable: Kafka cannot be reached; nothing was written', undefined, { 'retry-after': '1' });
  // The api makes the topics in the background as it starts: until then, "not yet".
  if (err instanceof TopicMissing) return answer(503, `Service Unavailable: ${err.message}`, undefined, { 'retry-after': '1' });
  if (isStatementTimeout(err)) return answer(503, 'the query took longer than its time budget: narrow it');
  if (isUnreachable(err)) return answer(503, 'Service Unavailable: the database cannot be reached', undefined, { 'retry-after': '1' });
  const e = err as FastifyError;
  if (e.validation?.length) {
    const v = e.validation[0]!;
    const params = (v.params ?? {}) as { missingProperty?: string; additionalProperty?: string };
    if (params.additionalProperty) return answer(400, `${params.additionalProperty}: unknown parameter`, params.additionalProperty);
    const field = params.missingProperty ?? (v.instancePath.replace(/^\//, '').replace(/\//g, '.') || e.validationContext || 'body');
    return answer(400, `${field}: ${v.message ?? 'is invalid'}`, field);
  }
  // fastify's own 4xx: a body too large, an unsupported media type, a malformed header.
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    const field =
      FASTIFY_FIELDS[e.code ?? ''] ?? (e.statusCode === 415 ? 'content-type' : e.code?.startsWith('FST_ERR_CTP') ? 'body' : 'request');
    return answer(e.statusCode, `${field}: ${e.message}`, field);
  }
  return answer(500, 'internal error');
}

/** The request part fastify's own errors are about, by code. */
const FASTIFY_FIELDS: Record<string, string> = {
  FST_ERR_BAD_URL: 'path',
  FST_ERR_ASYNC_CONSTRAINT: 'path',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'content-type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'content-length',
};

export type ErrorStyle = 'problem' | 'canWatch';

export function sendError(reply: FastifyReply, a: HttpAnswer, style: ErrorStyle = 'problem'): FastifyReply {
  reply.status(a.statusCode).headers(a.headers);
  if (style === 'canWatch') return reply.type('application/json; charset=utf-8').send({ status: 'ko', ...a.body });
  const { error, field, ...extra } = a.body;
  return reply.type(PROBLEM_TYPE).send(problemBody(a.statusCode, error, field, extra));
}

/** The error handler of a scope. */
export function errorHandler(style: ErrorStyle = 'problem') {
  return (err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const a = answerOf(err);
    if (a.statusCode >= 500) req.log.error({ err }, 'request failed');
    return sendError(reply, a, style);
  };
}

/** A route pattern ("/v1/encodes/:jobId") as a test of a concrete path. */
const patternOf = (url: string) => new RegExp(`^${url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:\w+/g, '[^/]+')}/?$`);

/**
 * Unknown paths are 404 naming the path; a known path asked with a method it does not have is 405
 * naming the method, with Allow listing those it has.
 */
export function registerErrors(app: FastifyInstance, routes: () => { method: string; url: string }[]): void {
  app.setErrorHandler(errorHandler());
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    const allowed = new Set(
      routes()
        .filter((r) => patternOf(r.url).test(path))
        .map((r) => r.method),
    );
    if (allowed.has('GET')) allowed.add('HEAD');
    if (allowed.size === 0) return sendError(reply, answer(404, `path: no route for ${req.method} ${path}`, 'path'));
    const allow = [...allowed].sort().join(', ');
    return sendError(reply, answer(405, `method: ${path} allows ${allow}, not ${req.method}`, 'method', { allow }));
  });
}
