// Every error of every route, mapped to HTTP in this one place, in one JSON shape:
// {"error": "<field>: <problem>", "field": "<field>"} (field when an input is at fault).
// Domain rules broken are 4xx; a store or Kafka out of reach is 503 "unavailable"; too much at
// once is 503 "busy" with Retry-After — an overload is told apart from an outage.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../../domain/decider.ts';
import { CallerRefused } from '../../infra/caller.ts';
import { isStatementTimeout, isUnreachable } from '../../infra/db.ts';
import { EventStoreUnavailable } from '../../infra/eventstore/port.ts';
import { Overloaded } from '../../infra/gate.ts';
import { KafkaUnavailable } from '../../infra/kafka/index.ts';

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

export function answerOf(err: unknown): HttpAnswer {
  if (err instanceof HttpError) return answer(err.statusCode, err.message, err.field, err.headers, err.extra);
  if (err instanceof CallerRefused) return answer(err.statusCode, err.message, err.field);
  if (err instanceof DomainError) return answer(DOMAIN_STATUS[err.kind], err.message, fieldOf(err.message));
  if (err instanceof Overloaded) return answer(503, err.message, undefined, { 'retry-after': String(err.retryAfterSeconds) });
  if (err instanceof EventStoreUnavailable) return answer(503, 'Service Unavailable', undefined, { 'retry-after': '1' });
  if (err instanceof KafkaUnavailable)
    return answer(503, 'Service Unavailable: Kafka cannot be reached; nothing was written', undefined, { 'retry-after': '1' });
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
    const field = e.statusCode === 415 ? 'content-type' : e.code?.startsWith('FST_ERR_CTP') ? 'body' : undefined;
    return answer(e.statusCode, field ? `${field}: ${e.message}` : e.message, field);
  }
  return answer(500, 'internal error');
}

export function sendError(reply: FastifyReply, a: HttpAnswer, extra: Record<string, unknown> = {}): FastifyReply {
  return reply
    .status(a.statusCode)
    .headers(a.headers)
    .type('application/json; charset=utf-8')
    .send({ ...a.body, ...extra });
}

/** The error handler of a scope: `extra` members go on every error body (canWatch's "status"). */
export function errorHandler(extra: Record<string, unknown> = {}) {
  return (err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const a = answerOf(err);
    if (a.statusCode >= 500) req.log.error({ err }, 'request failed');
    return sendError(reply, a, extra);
  };
}

export function registerErrors(app: FastifyInstance): void {
  app.setErrorHandler(errorHandler());
  app.setNotFoundHandler((req, reply) => sendError(reply, answer(404, `no route for ${req.method} ${req.url.split('?')[0]}`)));
}
