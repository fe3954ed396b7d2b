// The Postgres client: one kysely instance over a pg pool, typed by its caller's tables
// (projections/database.ts for the whole database, infra/write-tables.ts for the write side).
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { CopyClient } from './copy.ts';

// bigint columns (offsets, counts, ms timestamps) fit in a double: read them as numbers.
pg.types.setTypeParser(20, (v) => Number(v));

export interface PoolOptions {
  /** Client-side bound on one query (a server that hangs); the failure reads as "unreachable". */
  queryTimeoutMs?: number;
  /** How long to wait for a connection (a free one, or a new one to be made). */
  connectTimeoutMs?: number;
  /** Server-side budget of every statement on this pool (Postgres cancels it: code 57014). */
  statementTimeoutMs?: number;
}

/** A client of the tables `DB` describes (say which: there is no default). */
export function createDb<DB extends object>(url: string, max = 10, opts: PoolOptions = {}): Kysely<DB> {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    // Runs copyRows' statements as COPY FROM STDIN (infra/copy.ts); every other query as pg does.
    Client: CopyClient,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 1000,
    idleTimeoutMillis: 30_000,
    ...(opts.queryTimeoutMs ? { query_timeout: opts.queryTimeoutMs } : {}),
    ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs } : {}),
  });
  // A client losing its server, idle or checked out, must not crash the process: the query in
  // flight fails (and becomes a 503), the next one reconnects.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}

export async function pingDb(db: Kysely<any>): Promise<boolean> {
  try {
    await sql`SELECT 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}

const UNREACHABLE_CODES = new Set([
  '57P01',
  '57P02',
  '57P03',
  '53300',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EPIPE',
]);
const UNREACHABLE_MESSAGES = new RegExp(
  [
    'Connection terminated',
    'timeout exceeded when trying to connect',
    'Query read timeout',
    'Client has encountered a connection error',
    'Connection ended',
    'Cannot use a pool after calling end',
  ].join('|'),
  'i',
);

/** True when Postgres could not be reached or went away, as opposed to a statement it refused. */
export function isUnreachable(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (typeof e?.code === 'string' && (e.code.startsWith('08') || UNREACHABLE_CODES.has(e.code))) return true;
  return typeof e?.message === 'string' && UNREACHABLE_MESSAGES.test(e.message);
}

/** True when Postgres cancelled a statement that ran past its statement_timeout. */
export const isStatementTimeout = (err: unknown): boolean => (err as { code?: unknown } | null)?.code === '57014';
