// Encode jobs: owner, status, the running step and its percent, the output, the failure.
import { noEventLeft, type Projection } from '../projection.ts';
import { createOutputIndex } from './outputs.ts';
import { ENCODE_TABLES, createEncodeTables } from './tables.ts';
import { firstTime } from '../applied-versions.ts';

const NAME = 'encodes';

export const encodesProjection: Projection<'encodes'> = {
  name: NAME,
  topics: ['encodes'],
  views: ENCODE_TABLES,
  createTables: createEncodeTables,
  indexes: [createOutputIndex],
  async apply(trx, records) {
    for (const r of records) {
      if (!(await firstTime(trx, NAME, r))) continue;
      const set = (jobId: string, at: number, values: Record<string, unknown>) =>
        trx
          .updateTable('encode_jobs')
          .set({ ...values, updated_at_ms: at })
          .where('job_id', '=', jobId)
          .execute();
      const { type, data: d } = r.event;
      switch (type) {
        case 'EncodeRequested': {
          const row = {
            user_id: d.userId,
            upload_id: d.uploadId,
            sha256: d.sha256,
            filename: d.filename,
            raw: d.raw,
            options: JSON.stringify(d.options),
            status: 'queued',
            attempt: d.attempt,
            step: null,
            percent: 0,
            steps_done: '[]',
            worker: null,
            output_sha256: null,
            output_size: null,
            error: null,
            stderr_tail: null,
            requested_at_ms: d.at,
            updated_at_ms: d.at,
          };
          await trx
            .insertInto('encode_jobs')
            .values({ job_id: d.jobId, ...row })
            .onConflict((oc) => oc.column('job_id').doUpdateSet(row))
            .execute();
          break;
        }
        case 'EncodeStepStarted': {
          const job = await trx.selectFrom('encode_jobs').select('steps_done').where('job_id', '=', d.jobId).executeTakeFirst();
          // A step started again (after a takeover) is no longer done, nor is anything after it.
          const done = job?.steps_done ?? [];
          const kept = done.includes(d.step) ? done.slice(0, done.indexOf(d.step)) : done;
          await set(d.jobId, d.at, { status: 'running', step: d.step, percent: 0, worker: d.worker, steps_done: JSON.stringify(kept) });
          break;
        }
        case 'EncodeProgressed':
          await set(d.jobId, d.at, { step: d.step, percent: d.percent });
          break;
        case 'EncodeStepCompleted': {
          const job = await trx.selectFrom('encode_jobs').select('steps_done').where('job_id', '=', d.jobId).executeTakeFirst();
          await set(d.jobId, d.at, { percent: 100, steps_done: JSON.stringify([...(job?.steps_done ?? []), d.step]) });
          break;
        }
        case 'EncodeFailed':
          await set(d.jobId, d.at, { status: 'failed', step: d.step, error: d.reason, stderr_tail: d.stderrTail });
          break;
        case 'EncodeCompleted':
          await set(d.jobId, d.at, { status: 'completed', step: null, percent: 100, output_sha256: d.outputSha256, output_size: d.size });
          break;
        case 'EncodeDeduplicated':
          break; // an owner asking again: the job's row does not change
        default:
          noEventLeft(r.event);
      }
    }
  },
};
