// A Postgres advisory lock held by a session of its own, which also LISTENs for what wakes its
// holder (the relay: one active copy, woken by appends; a notifier: its liveness, woken by new
// deliveries). The lock lives and dies with that session: when it ends (Postgres restarted, the
// connection cut or silent), `lost` resolves at once and the holder must stop.
import pg from 'pg';
import { KEY_SQL, lockText } from './locks.ts';

/** How often the session is asked to answer, so a connection that died silently is noticed. */
const HEARTBEAT_MS = 2000;
const HEARTBEAT_TIMEOUT_MS = 5000;

export interface HeldLock {
  /** Resolves when the session holding the lock has ended: the lock is gone with it. */
  readonly lost: Promise<void>;
  /** Ends the session, which releases the lock. */
  release(): Promise<void>;
}

/**
 * Takes lock `name` if no other session holds it; undefined when another does. Throws when
 * Postgres cannot be reached. `onNotify` is called for every NOTIFY on `channel` while it is held.
 */
export async function trySessionLock(
  databaseUrl: string,
  name: string,
  channel: string,
  onNotify: () => void,
): Promise<HeldLock | undefined> {
  const client = new pg.Client({
    connectionString: databaseUrl,
    connectionTimeoutMillis: 3000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 5000,
  });
  client.on('error', () => undefined); // the 'end' that follows is what counts
  let ended!: () => void;
  const lost = new Promise<void>((resolve) => (ended = resolve));
  client.once('end', () => ended());
  try {
    await client.connect();
    const { rows } = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${KEY_SQL}) AS ok`, [lockText(name)]);
    if (!rows[0]?.ok) {
      await client.end();
      return undefined;
    }
    client.on('notification', onNotify);
    await client.query(`LISTEN ${channel}`);
  } catch (err) {
    await client.end().catch(() => undefined);
    throw err;
  }
  const heartbeat = setInterval(() => {
    const timeout = setTimeout(() => void client.end().catch(() => undefined), HEARTBEAT_TIMEOUT_MS);
    client.query('SELECT 1').then(
      () => clearTimeout(timeout),
      () => (clearTimeout(timeout), void client.end().catch(() => undefined)),
    );
  }, HEARTBEAT_MS);
  void lost.then(() => clearInterval(heartbeat));
  return {
    lost,
    release: async () => {
      clearInterval(heartbeat);
      await client.end().catch(() => undefined);
    },
  };
}
