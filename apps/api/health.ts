// /healthz (the process is up), /readyz (Kafka and Postgres answer), /metrics (Prometheus).
import type { FastifyPluginAsync } from 'fastify';
import { pingDb } from '../../infra/db.ts';
import type { Db } from '../../projections/database.ts';
import type { EventLog } from '../../infra/kafka/index.ts';
import { prom, type Registry } from '../../infra/metrics.ts';
import { json, media, obj } from './api-schemas.ts';

export function healthRoutes(deps: { db: Db; log: EventLog; metrics: Registry }): FastifyPluginAsync {
  const { db, log, metrics } = deps;

  // Consumer lag of every projection, read at scrape time from the log's ends and the
  // positions each projection committed with its rows.
  new prom.Gauge({
    name: 'castlog_consumer_lag',
    help: 'Records in the log a projection has not applied yet',
    labelNames: ['consumer', 'topic', 'partition'],
    registers: [metrics],
    async collect() {
      this.reset();
      const positions = await db
        .selectFrom('projection_positions')
        .selectAll()
        .execute()
        .catch(() => []);
      const topics = [...new Set(positions.map((p) => p.topic))];
      for (const topic of topics) {
        const ends = await log.offsets(topic as never).catch(() => []);
        for (const p of positions.filter((x) => x.topic === topic)) {
          const end = ends.find((e) => e.partition === p.partition);
          if (end) this.set({ consumer: p.projection, topic, partition: String(p.partition) }, Math.max(0, end.high - p.next_offset));
        }
      }
    },
  });

  return async (app) => {
    const ready = obj({
      status: { type: 'string', enum: ['ready', 'unavailable'] },
      kafka: { type: 'boolean' },
      postgres: { type: 'boolean' },
    });
    const healthz = { summary: 'The process is up', response: { 200: json('Up', obj({ status: { const: 'ok' } })) } };
    const readyz = { summary: 'Kafka and Postgres answer', response: { 200: json('Ready', ready), 503: json('Not ready', ready) } };
    const metricsDoc = { summary: 'Prometheus metrics', response: { 200: media('The text exposition format', ['text/plain']) } };
    app.get('/healthz', { schema: healthz }, async () => ({ status: 'ok' }));
    app.get('/readyz', { schema: readyz }, async (_req, reply) => {
      const [kafka, postgres] = await Promise.all([log.ping(), pingDb(db)]);
      const ok = kafka && postgres;
      const replication = log.replicationShortfalls.length ? { replicationShortfalls: log.replicationShortfalls } : {};
      return reply.status(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', kafka, postgres, ...replication });
    });
    app.get('/metrics', { schema: metricsDoc }, async (_req, reply) => reply.type(metrics.contentType).send(await metrics.metrics()));
  };
}
