// Encode jobs' webhooks, from the `encodes` topic (the notifier's consumer group): each
// EncodeRequested is kept in Postgres with the webhook it asked for, and the job's EncodeCompleted
// or EncodeFailed becomes a delivery to that webhook — the request's, i.e. the latest before it in
// the job's stream. Rows are inserted ON CONFLICT DO NOTHING on their cause, so reading a record
// again (a restart before the group committed, a repeat the relay published) adds nothing.
import type { Config } from '../../infra/config.ts';
import type { LogRecord, PartitionBatch } from '../../infra/kafka/index.ts';
import type { Logger } from '../../infra/logger.ts';
import type { WriteDb as Db } from '../../infra/write-tables.ts';
import type { EventOf } from '../../schemas/types.generated.ts';

type Outcome = EventOf<'EncodeCompleted' | 'EncodeFailed'>;

/** What a job's webhook receives (signed with the job's secret, as every webhook is). */
export function encodeWebhookPayload(event: Outcome, cause: string, attempt: number, publicApiUrl: string): Record<string, unknown> {
  const { jobId } = event.data;
  const data =
    event.type === 'EncodeCompleted'
      ? {
          jobId,
          attempt,
          status: 'completed',
          output: { size: event.data.size, container: event.data.container, url: `${publicApiUrl}/v1/encodes/${jobId}/output` },
          at: event.data.at,
        }
      : { jobId, attempt, status: 'failed', step: event.data.step, reason: event.data.reason, at: event.data.at };
  return { type: event.type, id: cause, jobId, data };
}

export function encodeWebhookHandler(db: Db, config: Config, logger: Logger): (batch: PartitionBatch) => Promise<void> {
  const handle = async (trx: Db, r: LogRecord) => {
    const version = r.meta.streamVersion;
    const e = r.event;
    if (e.type !== 'EncodeRequested' && e.type !== 'EncodeCompleted' && e.type !== 'EncodeFailed') return;
    if (version === undefined || !Number.isSafeInteger(version)) {
      logger.warn({ partition: r.partition, offset: r.offset, type: e.type }, 'encode event without its stream version skipped');
      return;
    }
    if (e.type === 'EncodeRequested') {
      const { jobId, attempt, userId, webhookUrl } = e.data;
      await trx
        .insertInto('encode_requests')
        .values({ job_id: jobId, attempt, stream_version: version, user_id: userId, webhook_url: webhookUrl })
        .onConflict((oc) => oc.columns(['job_id', 'attempt']).doNothing())
        .execute();
      return;
    }
    const request = await trx
      .selectFrom('encode_requests')
      .selectAll()
      .where('job_id', '=', e.data.jobId)
      .where('stream_version', '<', version)
      .orderBy('stream_version', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (!request?.webhook_url) return;
    const cause = `encode:${request.job_id}:${request.attempt}:${e.type}`;
    const now = Date.now();
    await trx
      .insertInto('deliveries')
      .values({
        kind: 'webhook',
        cause,
        user_id: request.user_id,
        alert_id: null,
        job_id: request.job_id,
        target: request.webhook_url,
        payload: JSON.stringify(encodeWebhookPayload(e, cause, request.attempt, config.publicApiUrl)),
        next_attempt_at_ms: now,
        created_at_ms: now,
        sent_at_ms: null,
        last_error: null,
      })
      .onConflict((oc) => oc.columns(['kind', 'cause']).doNothing())
      .execute();
  };
  return async (batch) => {
    if (batch.records.length === 0) return;
    await db.transaction().execute(async (trx) => {
      for (const r of batch.records) await handle(trx, r);
    });
  };
}
