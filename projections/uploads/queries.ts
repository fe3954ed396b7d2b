// How the apps read the uploads read model (uploads), through the public view.
import type { Kysely } from 'kysely';
import type { Database } from '../database.ts';

type Db = Kysely<Database>;

/** Uploads still receiving bytes that were created before `createdBefore` (ms), at most `limit`. */
export function unfinishedUploadsBefore(db: Db, createdBefore: number, limit: number): Promise<{ upload_id: string }[]> {
  return db
    .selectFrom('uploads')
    .select('upload_id')
    .where('status', '=', 'uploading')
    .where('created_at_ms', '<', createdBefore)
    .limit(limit)
    .execute();
}

/** True when some completed upload, anyone's, is the file `sha256`: its bytes must stay. */
export async function isCompletedFile(db: Db, sha256: string): Promise<boolean> {
  const row = await db
    .selectFrom('uploads')
    .select('upload_id')
    .where('sha256', '=', sha256)
    .where('status', '=', 'completed')
    .executeTakeFirst();
  return row !== undefined;
}
