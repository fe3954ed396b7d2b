import { pino, type Logger } from 'pino';

/** A URL as logged: the value of any query parameter that may carry a credential is left out. */
export function loggableUrl(url: string): string {
  return url.replace(/([?&](?:token|access_token|key|secret|signature|sig)=)[^&#]*/gi, '$1[redacted]');
}

// JSON lines on stdout; one logger per app, named after it. Errors keep their stack; requests are
// logged without credentials.
export function createLogger(app: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name: app,
    level,
    base: { app },
    serializers: {
      err: pino.stdSerializers.err,
      req: (req: { method?: string; url?: string; ip?: string }) => ({ method: req.method, url: loggableUrl(req.url ?? ''), ip: req.ip }),
    },
  });
}
export type { Logger };
