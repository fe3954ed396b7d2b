// One JSON shape for every error: {"error": "<what went wrong>", "field"?: "<which input>"}.
import type { FastifyError, FastifyInstance } from 'fastify';

export class HttpError extends Error {
  constructor(readonly statusCode: number, message: string, readonly field?: string, readonly extra: Record<string, unknown> = {}) {
    super(message);
  }
}

export const badRequest = (field: string, problem: string) => new HttpError(400, `${field}: ${problem}`, field);

export function registerErrors(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | HttpError, req, reply) => {
    if (err instanceof HttpError) {
      return reply.status(err.statusCode).send({ error: err.message, ...(err.field ? { field: err.field } : {}), ...err.extra });
    }
    if (err.validation?.length) {
      const v = err.validation[0]!;
      const params = (v.params ?? {}) as { missingProperty?: string; additionalProperty?: string };
      if (params.additionalProperty) {
        return reply.status(400).send({ error: `${params.additionalProperty}: unknown parameter`, field: params.additionalProperty });
      }
      const field = params.missingProperty ?? (v.instancePath.replace(/^\//, '').replace(/\//g, '.') || err.validationContext || 'body');
      return reply.status(400).send({ error: `${field}: ${v.message ?? 'is invalid'}`, field });
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, 'request failed');
    return reply.status(status).send({ error: status >= 500 && status !== 503 ? 'internal error' : err.message });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: `no route for ${req.method} ${req.url.split('?')[0]}` }));
}
