// The worker's own metrics: how jobs end, how long each step takes, how long a job waited for a
// worker, how many this process is running now, and how many jobs are queued and running in all.
import { LATENCY_BUCKETS, prom, type Registry } from '../../infra/metrics.ts';
import type { Db } from '../../projections/database.ts';

/** Encode steps run from a fraction of a second (probe) to hours (a long encode). */
const STEP_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];

export type WorkerMetrics = ReturnType<typeof workerMetrics>;

export function workerMetrics(registry: Registry, running: () => number, db: Db) {
  new prom.Gauge({
    name: 'castlog_encode_jobs',
    help: 'Encode jobs queued and running, all workers together (every worker reports the same: take the max)',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      const rows = await db
        .selectFrom('encode_jobs')
        .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
        .where('status', 'in', ['queued', 'running'])
        .groupBy('status')
        .execute()
        .catch(() => undefined);
      if (!rows) return; // the database is away: the last counts stay, rather than a false zero
      for (const status of ['queued', 'running']) this.set({ status }, Number(rows.find((r) => r.status === status)?.n ?? 0));
    },
  });
  new prom.Gauge({
    name: 'castlog_worker_running_jobs',
    help: 'Encode jobs this worker is running',
    registers: [registry],
    collect() {
      this.set(running());
    },
  });
  return {
    jobs: new prom.Counter({
      name: 'castlog_worker_jobs_total',
      help: 'Job runs by how they ended: completed, failed, or let go (another worker has it, or this one stopped)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    takeovers: new prom.Counter({
      name: 'castlog_worker_takeovers_total',
      help: 'Jobs this worker resumed after another worker went quiet',
      registers: [registry],
    }),
    steps: new prom.Histogram({
      name: 'castlog_worker_step_duration_seconds',
      help: 'How long each step of a job took, by step and outcome',
      labelNames: ['step', 'outcome'] as const,
      buckets: STEP_BUCKETS,
      registers: [registry],
    }),
    queueWait: new prom.Histogram({
      name: 'castlog_worker_queue_wait_seconds',
      help: 'From EncodeRequested to the first step started by a worker',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
  };
}
