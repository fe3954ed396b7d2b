// The encode worker process: a member of the `castlog-workers` consumer group on `encodes`, plus a
// sweep for jobs whose worker went quiet. Scale by running more of them.
import { boot, retry } from '../boot.ts';
import { sleep } from '../../infra/retry.ts';
import { BlobStore } from '../../infra/blobs/blob-store.ts';
import { createDb, pingDb } from '../../infra/db.ts';
import { PostgresEventStore } from '../../infra/eventstore/postgres.ts';
import { serveMetrics } from '../../infra/metrics.ts';
import { encodesProjection } from '../../projections/encodes/projection.ts';
import { ensureRegistered } from '../../projections/versions.ts';
import { workerMetrics } from './metrics.ts';
import { Worker } from './worker.ts';
import type { Database } from '../../projections/database.ts';

const app = await boot('worker', { background: true });
const { config, logger, log, db } = app;
await retry(() => log.ensureTopics(), logger, 'ensure topics', Infinity);
// The sweep reads the jobs view; it exists before the projector first runs.
await retry(() => ensureRegistered(db, encodesProjection), logger, 'register projection encodes');
const decisionsDb = createDb<Database>(config.databaseUrl, 5, { connectTimeoutMs: 3000, queryTimeoutMs: 5000 });
app.onClose(() => decisionsDb.destroy());
const worker: Worker = new Worker({
  store: new PostgresEventStore(decisionsDb, log.codec),
  db,
  blobs: new BlobStore(config.blobDir),
  config,
  logger,
  metrics: workerMetrics(app.metrics, () => worker.busy, db),
});

const consumer = await retry(
  () =>
    log.consume({
      groupId: 'castlog-workers',
      topics: ['encodes'],
      commit: true,
      onPoison: (topic, partition, offset, error) => logger.error({ topic, partition, offset, err: error }, 'undecodable record skipped'),
      // Never waits for an encode: a busy worker leaves the job to the sweep of one with room.
      onBatch: async (batch) => {
        for (const r of batch.records) if (r.event.type === 'EncodeRequested') worker.offer(r.event.data.jobId);
      },
    }),
  logger,
  'join the workers group',
);
app.onClose(() => consumer.stop());
app.onClose(() => worker.stop());

let sweeping = true;
const sweep = async () => {
  while (sweeping) {
    await worker.sweep().catch((err) => logger.warn({ err }, 'job sweep failed'));
    await sleep(Math.min(1000, Math.max(100, Math.floor(config.workerLeaseMs / 4))));
  }
};
void sweep();
app.onClose(() => {
  sweeping = false;
});

const port = config.workerPort;
const server = serveMetrics(app.metrics, port, async () => (await pingDb(db)) && (await log.ping()));
app.onClose(() => new Promise((r) => server.close(r)));
logger.info({ port, id: worker.id }, 'worker running');
