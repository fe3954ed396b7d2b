// Capture-station keys. A key is shown once when created; only its sha256 is stored (keys are
// 256 random bits, so a fast hash is enough: there is nothing to brute-force). A removal is
// announced with NOTIFY, so every api process forgets the key at once.
import { createHash, randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import type { WriteDb as Db } from './write-tables.ts';
import type { Logger } from './logger.ts';
import { sleep } from './retry.ts';

export const hashKey = (key: string): string => createHash('sha256').update(key).digest('hex');
/** NOTIFY channel: a station was removed (payload: its name). */
const REMOVED = 'castlog_station_removed';
/** A station's name goes into every caption event it sends. */
export const STATION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const STATION_NAME_RULE = 'must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}';

export async function addStation(db: Db, name: string): Promise<string> {
  if (!STATION_NAME.test(name)) throw new Error(`station name ${STATION_NAME_RULE}`);
  const key = `cst_${randomBytes(32).toString('base64url')}`;
  await db
    .insertInto('stations')
    .values({ name, key_hash: hashKey(key) })
    .execute();
  return key;
}

export async function removeStation(db: Db, name: string): Promise<boolean> {
  // The NOTIFY is delivered when the DELETE commits, in the same statement's transaction.
  const { rows } = await sql<{ n: number }>`
    WITH gone AS (DELETE FROM stations WHERE name = ${name} RETURNING name)
    SELECT count(*)::int AS n, pg_notify(${REMOVED}, ${name}) FROM gone`.execute(db);
  return (rows[0]?.n ?? 0) > 0;
}

export async function listStations(db: Db): Promise<{ name: string; created_at: Date }[]> {
  return db.selectFrom('stations').select(['name', 'created_at']).orderBy('name').execute();
}

/**
 * Resolves a key to its station name. Hits are cached to keep ingest off the database, but only
 * while a LISTEN connection would hear of a removal: without one, every key is read afresh.
 */
export class StationKeys {
  private readonly cache = new Map<string, string>();
  /** Bumped on every removal heard: a lookup that started before one must not fill the cache. */
  private generation = 0;
  private listener: pg.Client | undefined;
  private listening = false;
  private closed = false;
  private readonly removedHandlers = new Set<(station: string) => void>();

  constructor(
    private readonly db: Db,
    private readonly databaseUrl: string | undefined,
    private readonly logger?: Logger,
  ) {
    if (databaseUrl) void this.listen();
  }

  /** Calls `fn` with the name of each station removed from now on (ingest ends its open streams). */
  onRemoved(fn: (station: string) => void): () => void {
    this.removedHandlers.add(fn);
    return () => this.removedHandlers.delete(fn);
  }

  async verify(key: string): Promise<string | undefined> {
    const hash = hashKey(key);
    const hit = this.listening ? this.cache.get(hash) : undefined;
    if (hit !== undefined) return hit;
    const generation = this.generation;
    const row = await this.db.selectFrom('stations').select('name').where('key_hash', '=', hash).executeTakeFirst();
    if (row && this.listening && generation === this.generation) this.cache.set(hash, row.name);
    return row?.name;
  }

  private forget(): void {
    this.generation++;
    this.cache.clear();
  }

  private async listen(): Promise<void> {
    for (let delay = 250; !this.closed; delay = Math.min(delay * 2, 5000)) {
      const client = new pg.Client({ connectionString: this.databaseUrl, connectionTimeoutMillis: 3000 });
      try {
        await client.connect();
        const lost = new Promise<void>((resolve) => {
          client.on('error', () => resolve());
          client.on('end', () => resolve());
        });
        client.on('notification', (n) => {
          this.forget();
          if (n.payload) for (const fn of this.removedHandlers) fn(n.payload);
        });
        await client.query(`LISTEN ${REMOVED}`);
        this.listener = client;
        this.listening = true;
        delay = 250;
        await lost;
      } catch (err) {
        this.logger?.warn({ err }, 'station key listener: database unavailable, reading keys afresh meanwhile');
      }
      // Removals may have been missed while nobody listened.
      this.listening = false;
      this.forget();
      this.listener = undefined;
      await client.end().catch(() => undefined);
      if (!this.closed) await sleep(delay);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listening = false;
    await this.listener?.end().catch(() => undefined);
  }
}
