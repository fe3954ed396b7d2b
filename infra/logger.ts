import { pino, type Logger } from 'pino';

// JSON lines on stdout; one logger per app, named after it.
export function createLogger(app: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: app, level, base: { app } });
}
export type { Logger };
