// tus locks an upload for the length of each request that touches it (HEAD, PATCH, DELETE). Its
// default locker only sees its own process; this one is a Postgres advisory lock, so requests for
// one upload are one at a time across every api process. All of a process's locks live on one
// connection of its own (a session can hold many), so a long PATCH holds no pool connection.
// As tus asks, a newer request takes an upload over: the waiter NOTIFYs, the holder (in whatever
// process) cancels its request, which ends its body gracefully and releases the lock.
import pg from 'pg';
import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/utils';
import { EventStoreUnavailable } from '../../infra/eventstore/port.ts';
import type { Logger } from '../../infra/logger.ts';
import { sleep } from '../../infra/retry.ts';
import { KEY_SQL, LOCKS, lockText } from '../../infra/locks.ts';

const CHANNEL = 'castlog_upload_release';
const RETRY_MS = 50;

export class UploadLocker implements Locker {
  private client: Promise<pg.Client> | undefined;
  /** Locks this process holds, and how to ask each holder to let go. */
  private readonly held = new Map<string, RequestRelease>();
  /** Locks being asked for right now: a session's advisory locks stack, so two asks here must not overlap. */
  private readonly asking = new Set<string>();

  constructor(
    private readonly databaseUrl: string,
    private readonly logger: Logger,
    /** Told which uploads were locked when the lock connection was lost: their writes may have overlapped another's. */
    private readonly onLost: (uploadIds: string[]) => void,
    private readonly timeoutMs = 30_000,
  ) {}

  newLock(id: string): Lock {
    return {
      lock: (signal, requestRelease) => this.lock(id, signal, requestRelease),
      unlock: () => this.unlock(id),
    };
  }

  /** True while this process holds the upload's lock. */
  holds(id: string): boolean {
    return this.held.has(id);
  }

  async close(): Promise<void> {
    const client = await this.client?.catch(() => undefined);
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private connection(): Promise<pg.Client> {
    this.client ??= (async () => {
      const client = new pg.Client({ connectionString: this.databaseUrl, connectionTimeoutMillis: 3000 });
      const lost = () => {
        if (this.client === undefined) return;
        this.client = undefined;
        // The server dropped every lock of this session: whoever wrote under them must stop.
        const ids = [...this.held.keys()];
        for (const release of this.held.values()) void release();
        this.held.clear();
        if (ids.length) {
          this.logger.warn({ uploads: ids }, 'upload lock connection lost; its requests are cancelled');
          this.onLost(ids);
        }
      };
      client.on('error', lost);
      client.on('end', lost);
      client.on('notification', (n) => void this.held.get(n.payload ?? '')?.());
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
      return client;
    })().catch((err) => {
      this.client = undefined;
      throw err;
    });
    return this.client;
  }

  private async lock(id: string, signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    try {
      await this.acquire(id, signal, requestRelease);
    } catch (err) {
      // Postgres out of reach is a 503, as for every decision; tus's own errors pass as they are.
      if (err instanceof Error) throw new EventStoreUnavailable(`upload lock: ${err.message}`);
      throw err;
    }
  }

  private async acquire(id: string, signal: AbortSignal, requestRelease: RequestRelease): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    for (let asked = false; ;) {
      if (signal.aborted) throw ERRORS.ABORTED;
      if (!this.held.has(id) && !this.asking.has(id)) {
        this.asking.add(id);
        try {
          const client = await this.connection();
          const { rows } = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${KEY_SQL}) AS ok`, [
            lockText(LOCKS.upload(id)),
          ]);
          if (rows[0]!.ok) {
            this.held.set(id, requestRelease);
            return;
          }
        } finally {
          this.asking.delete(id);
        }
      }
      if (!asked) {
        asked = true;
        // Whoever holds it, here or in another process, is asked to let go.
        void this.held.get(id)?.();
        await (await this.connection()).query('SELECT pg_notify($1, $2)', [CHANNEL, id]).catch(() => undefined);
      }
      if (Date.now() > deadline) throw ERRORS.ERR_LOCK_TIMEOUT;
      await sleep(RETRY_MS);
    }
  }

  private async unlock(id: string): Promise<void> {
    if (!this.held.delete(id)) return; // lost with its connection already
    // Sent, not waited for: the answer to a PATCH need not wait a round trip for it. The lock
    // connection runs its queries in order, so this process's next ask for the upload comes after
    // it; another process's ask that comes too soon retries (and its NOTIFY finds nothing held here).
    const client = this.client;
    void client?.then((c) => c.query(`SELECT pg_advisory_unlock(${KEY_SQL})`, [lockText(LOCKS.upload(id))])).catch(() => undefined);
  }
}
