// How the apps read the stream-limit read model (viewers, viewer_leases), through the public views.
import type { Kysely, Selectable } from 'kysely';
import type { Database, ViewerLeasesTable, ViewersTable } from '../database.ts';

type Db = Kysely<Database>;

/** An issued user id and its own stream limit (null: the default applies); undefined for an id never issued. */
export function viewerOf(db: Db, userId: string): Promise<Selectable<ViewersTable> | undefined> {
  return db.selectFrom('viewers').selectAll().where('user_id', '=', userId).executeTakeFirst();
}

/** A user's leases still running at `now`, oldest activation first. */
export function runningLeases(db: Db, userId: string, now: number): Promise<Selectable<ViewerLeasesTable>[]> {
  return db
    .selectFrom('viewer_leases')
    .selectAll()
    .where('user_id', '=', userId)
    .where('expires_at_ms', '>', now)
    .orderBy('activated_at_ms')
    .execute();
}

/** Users with a lease past its expiry at `now` whose expiry is not recorded yet, at most `limit`. */
export function usersWithExpiredLeases(db: Db, now: number, limit: number): Promise<{ user_id: string }[]> {
  return db.selectFrom('viewer_leases').select('user_id').distinct().where('expires_at_ms', '<=', now).limit(limit).execute();
}
