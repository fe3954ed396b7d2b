// The Postgres client: one kysely instance over a pg pool. Types come from projections/database.ts.
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from '../projections/database.ts';

// bigint columns (offsets, counts, ms timestamps) fit in a double: read them as numbers.
pg.types.setTypeParser(20, (v) => Number(v));

export type Db = Kysely<Database>;

export function createDb(url: string, max = 10, opts: { queryTimeoutMs?: number; connectTimeoutMs?: number } = {}): Db {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 1000,
    idleTimeoutMillis: 30_000,
    ...(opts.queryTimeoutMs ? { query_timeout: opts.queryTimeoutMs } : {}),
  });
  // A client losing its server, idle or checked out, must not crash the process: the query in
  // flight fails (and becomes a 503), the next one reconnects.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

export async function pingDb(db: Db): Promise<boolean> {
  try {
    await sql`SELECT 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}
