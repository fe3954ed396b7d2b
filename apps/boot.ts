// What every app starts with: config, JSON logger, Postgres (migrated), the event log, metrics;
// a background app (projections, the relay, encodes) also the lower CPU priority BACKGROUND_NICE asks.
import { loadConfig, type Config } from '../infra/config.ts';
import { createDb } from '../infra/db.ts';
import type { Db, Database } from '../projections/database.ts';
import { EventLog } from '../infra/kafka/index.ts';
import { createLogger, type Logger } from '../infra/logger.ts';
import { createRegistry, type Registry } from '../infra/metrics.ts';
import { yieldCpu } from '../infra/priority.ts';
import { retry as retryWith, sayingWhy } from '../infra/retry.ts';
import { migrate } from '../projections/migrate.ts';

export interface App {
  config: Config;
  logger: Logger;
  db: Db;
  log: EventLog;
  metrics: Registry;
  /** Registers cleanup to run, in reverse order, on SIGINT/SIGTERM or close(). */
  onClose(fn: () => Promise<unknown> | unknown): void;
  close(): Promise<void>;
}

export async function boot(
  name: string,
  opts: {
    migrate?: boolean;
    appendTimeoutMs?: number;
    poolSize?: number;
    /** Work nobody waits on by the request (projections, the relay, encodes): it may yield the CPU to those who do. */
    background?: boolean;
  } = {},
): Promise<App> {
  const config = loadConfig();
  const logger = createLogger(name, config.logLevel);
  if (opts.background) {
    const failed = yieldCpu(config.backgroundNice);
    if (failed) logger.warn({ nice: config.backgroundNice }, failed);
  }
  const db = createDb<Database>(config.databaseUrl, opts.poolSize);
  if (opts.migrate !== false) await retry(() => migrate(db), logger, 'migrate');
  const log = new EventLog(config.kafkaBrokers, config.topicPrefix, logger, {
    appendTimeoutMs: opts.appendTimeoutMs,
    clusterSize: config.kafkaClusterSize,
  });
  const closers: (() => Promise<unknown> | unknown)[] = [() => db.destroy(), () => log.close()];
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      for (const fn of closers.reverse())
        await Promise.resolve()
          .then(fn)
          .catch((err) => logger.warn({ err }, 'close'));
    })());
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      logger.info({ signal }, 'stopping');
      // Long-lived requests (a station's ingest stream) must not hold the process forever;
      // everything acknowledged is in Kafka already.
      setTimeout(() => process.exit(0), 5000).unref();
      void close().then(() => process.exit(0));
    });
  }
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
  return { config, logger, db, log, metrics: createRegistry(name), onClose: (fn) => closers.push(fn), close };
}

/** Retries start-up work while Kafka or Postgres are still coming up, saying so. */
export function retry<T>(fn: () => Promise<T>, logger: Logger, what: string, attempts = 60): Promise<T> {
  return retryWith(fn, {
    attempts,
    delayMs: 500,
    onRetry: sayingWhy((err, attempt, unsaid) => logger.warn({ err, attempt, ...(unsaid ? { unsaid } : {}) }, `${what} failed, retrying`)),
  });
}
