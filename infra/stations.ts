// Capture-station keys. A key is shown once when created; only its sha256 is stored (keys are
// 256 random bits, so a fast hash is enough: there is nothing to brute-force).
import { createHash, randomBytes } from 'node:crypto';
import type { Db } from './db.ts';

export const hashKey = (key: string): string => createHash('sha256').update(key).digest('hex');

export async function addStation(db: Db, name: string): Promise<string> {
  const key = `cst_${randomBytes(32).toString('base64url')}`;
  await db.insertInto('stations').values({ name, key_hash: hashKey(key) }).execute();
  return key;
}

export async function removeStation(db: Db, name: string): Promise<boolean> {
  const r = await db.deleteFrom('stations').where('name', '=', name).executeTakeFirst();
  return r.numDeletedRows > 0n;
}

export async function listStations(db: Db): Promise<{ name: string; created_at: Date }[]> {
  return db.selectFrom('stations').select(['name', 'created_at']).orderBy('name').execute();
}

/** Resolves a key to its station name; hits are cached for a minute to keep ingest off the database. */
export class StationKeys {
  private readonly cache = new Map<string, { name: string; until: number }>();
  constructor(private readonly db: Db, private readonly ttlMs = 60_000) {}

  async verify(key: string): Promise<string | undefined> {
    const hash = hashKey(key);
    const hit = this.cache.get(hash);
    if (hit && hit.until > Date.now()) return hit.name;
    const row = await this.db.selectFrom('stations').select('name').where('key_hash', '=', hash).executeTakeFirst();
    if (row) this.cache.set(hash, { name: row.name, until: Date.now() + this.ttlMs });
    return row?.name;
  }
}
