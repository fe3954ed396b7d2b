// Expensive reads (search, export, analytics, history) run on a pool of their own with a time
// budget per statement enforced by Postgres, behind a gate: however many arrive at once, they
// never hold the connections ingest, decisions or health need, and past the gate's queue they
// are told "busy" (503 with Retry-After) at once.
import type { Config } from '../../infra/config.ts';
import { createDb } from '../../infra/db.ts';
import type { Db, Database } from '../../projections/database.ts';
import { Gate } from '../../infra/gate.ts';

export interface Reads {
  run<T>(work: (db: Db) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export function readPool(config: Pick<Config, 'databaseUrl' | 'readConcurrency' | 'readTimeoutMs'>): Reads {
  const db = createDb<Database>(config.databaseUrl, config.readConcurrency, {
    statementTimeoutMs: config.readTimeoutMs,
    connectTimeoutMs: 1000,
  });
  const gate = new Gate({
    name: 'searches and exports',
    concurrency: config.readConcurrency,
    maxQueued: config.readConcurrency * 16,
    maxWaitMs: config.readTimeoutMs,
  });
  return { run: (work) => gate.run(() => work(db)), close: () => db.destroy() };
}
