// Uploads as their owners see them: status, offset, the stored file's hash, why one was rejected.
import { noEventLeft, type Projection } from '../projection.ts';
import { UPLOAD_TABLES, createUploadTables } from './tables.ts';
import { firstTime } from '../applied-versions.ts';

const NAME = 'uploads';

export const uploadsProjection: Projection<'uploads'> = {
  name: NAME,
  topics: ['uploads'],
  views: UPLOAD_TABLES,
  createTables: createUploadTables,
  async apply(trx, records) {
    for (const r of records) {
      if (!(await firstTime(trx, NAME, r))) continue;
      const set = (uploadId: string, at: number, values: Record<string, unknown>) =>
        trx
          .updateTable('uploads')
          .set({ ...values, updated_at_ms: at })
          .where('upload_id', '=', uploadId)
          .execute();
      const { type, data: d } = r.event;
      switch (type) {
        case 'UploadCreated':
          await trx
            .insertInto('uploads')
            .values({
              upload_id: d.uploadId,
              user_id: d.userId,
              filename: d.filename,
              filetype: d.filetype,
              raw: d.raw,
              length: d.length,
              offset: 0,
              status: 'uploading',
              sha256: null,
              duration_seconds: null,
              reason: null,
              created_at_ms: d.at,
              updated_at_ms: d.at,
            })
            .onConflict((oc) => oc.doNothing())
            .execute();
          break;
        case 'UploadChunkAppended':
          await set(d.uploadId, d.at, { offset: d.offset + d.length });
          break;
        case 'UploadCompleted':
          await set(d.uploadId, d.at, { status: 'completed', sha256: d.sha256, duration_seconds: d.durationSeconds });
          break;
        case 'UploadRejected':
          await set(d.uploadId, d.at, { status: 'rejected', reason: d.reason });
          break;
        case 'UploadTerminated':
        case 'UploadExpired':
          await set(d.uploadId, d.at, { status: type === 'UploadExpired' ? 'expired' : 'terminated' });
          break;
        default:
          noEventLeft(r.event);
      }
    }
  },
};
