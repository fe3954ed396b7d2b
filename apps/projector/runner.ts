// Runs one projection: consumes its topics and, per batch, writes its rows and its positions in
// one Postgres transaction. It starts from the positions in Postgres, never from group offsets,
// so a crash at any point neither loses nor doubles a row.
import { sql } from 'kysely';
import type { Db } from '../../infra/db.ts';
import type { EventLog } from '../../infra/kafka.ts';
import type { Logger } from '../../infra/logger.ts';
import { prom, LATENCY_BUCKETS, type Registry } from '../../infra/metrics.ts';
import type { Projection } from '../../projections/projection.ts';

/** One set of metrics per process, labelled by projection. */
function projectionMetrics(metrics: Registry) {
  const get = <T>(name: string, make: () => T): T => (metrics.getSingleMetric(name) as T | undefined) ?? make();
  return {
    applied: get('castlog_projection_events_total', () => new prom.Counter({ name: 'castlog_projection_events_total', help: 'Events applied', labelNames: ['projection'], registers: [metrics] })),
    lag: get('castlog_projection_lag', () => new prom.Gauge({ name: 'castlog_projection_lag', help: 'Records in the log not yet applied', labelNames: ['projection', 'topic', 'partition'], registers: [metrics] })),
    latency: get('castlog_projection_latency_seconds', () => new prom.Histogram({ name: 'castlog_projection_latency_seconds', help: 'From ingest acknowledgement to the row committed', labelNames: ['projection'], buckets: LATENCY_BUCKETS, registers: [metrics] })),
  };
}

export interface RunningProjection {
  stop(): Promise<void>;
}

export async function runProjection(deps: { log: EventLog; db: Db; logger: Logger; metrics: Registry }, projection: Projection): Promise<RunningProjection> {
  const { log, db, logger, metrics } = deps;
  const { applied, lag, latency } = projectionMetrics(metrics);
  const consumer = await log.consume({
    groupId: `castlog-projection-${projection.name}`,
    topics: projection.topics,
    commit: true,
    startAt: async (topic, partition) => {
      const low = (await log.offsets(topic)).find((o) => o.partition === partition)?.low ?? 0;
      await db
        .insertInto('projection_positions')
        .values({ projection: projection.name, topic, partition, next_offset: low })
        .onConflict((oc) => oc.doNothing())
        .execute();
      const row = await db
        .selectFrom('projection_positions')
        .select('next_offset')
        .where('projection', '=', projection.name).where('topic', '=', topic).where('partition', '=', partition)
        .executeTakeFirstOrThrow();
      logger.info({ topic, partition, offset: row.next_offset }, 'projection starts at stored position');
      return row.next_offset;
    },
    onPoison: (topic, partition, offset, error) => logger.error({ topic, partition, offset, err: String(error) }, 'undecodable record skipped'),
    onBatch: async (batch) => {
      const outcome = await db.transaction().execute(async (trx) => {
        const pos = await trx
          .selectFrom('projection_positions')
          .select('next_offset')
          .where('projection', '=', projection.name).where('topic', '=', batch.topic).where('partition', '=', batch.partition)
          .forUpdate()
          .executeTakeFirst();
        const next = pos?.next_offset ?? 0;
        const fresh = batch.records.filter((r) => r.offset >= next);
        if (!fresh.length) return { next };
        // Records before our position were already applied; a hole after it means the consumer
        // started somewhere else (a lost seek): go back rather than skip.
        if (batch.firstOffset > next) return { seek: next };
        await projection.apply(trx, fresh);
        const nextOffset = fresh.at(-1)!.offset + 1;
        await sql`INSERT INTO projection_positions (projection, topic, partition, next_offset, updated_at)
                  VALUES (${projection.name}, ${batch.topic}, ${batch.partition}, ${nextOffset}, now())
                  ON CONFLICT (projection, topic, partition) DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()`.execute(trx);
        return { next: nextOffset, applied: fresh };
      });
      if ('seek' in outcome && outcome.seek !== undefined) {
        logger.warn({ topic: batch.topic, partition: batch.partition, seek: outcome.seek }, 'gap before stored position, seeking back');
        return { seek: outcome.seek };
      }
      lag.set({ projection: projection.name, topic: batch.topic, partition: batch.partition }, Math.max(0, batch.highWatermark - outcome.next));
      if ('applied' in outcome && outcome.applied) {
        applied.inc({ projection: projection.name }, outcome.applied.length);
        const now = Date.now();
        const last = outcome.applied.at(-1)!;
        const receivedAt = (last.event.data as { receivedAt?: number }).receivedAt ?? Date.parse(last.meta.time);
        latency.observe({ projection: projection.name }, Math.max(0, now - receivedAt) / 1000);
      }
      return undefined;
    },
  });
  return consumer;
}
