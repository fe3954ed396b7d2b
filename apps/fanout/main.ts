// The fanout process: tails every partition of `captions` (its own consumer group, so each
// instance sees everything) and pushes captions to subscribed browsers.
import { boot, retry } from '../boot.ts';
import { pingDb } from '../../infra/db.ts';
import { EventLog } from '../../infra/kafka.ts';
import { prom, LATENCY_BUCKETS } from '../../infra/metrics.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';
import { postgresArchive } from './archive.ts';
import { Hub } from './hub.ts';
import { startFanoutServer } from './server.ts';

const app = await boot('fanout');
const { config, log, db, metrics, logger } = app;
await retry(() => log.ensureTopics(), logger, 'ensure topics');

const deliveries = new prom.Counter({ name: 'castlog_fanout_deliveries_total', help: 'Messages handed to WebSockets', registers: [metrics] });
const slow = new prom.Counter({ name: 'castlog_fanout_slow_consumers_total', help: 'Clients closed for falling behind', registers: [metrics] });
const e2e = new prom.Histogram({ name: 'castlog_e2e_latency_seconds', help: 'From ingest to the fanout handing the caption to subscribers', buckets: LATENCY_BUCKETS, registers: [metrics] });

// Start far enough back that clients resuming after a short absence are served from memory.
const ends = await retry(() => log.offsets('captions'), logger, 'read offsets');
const starts = ends.map((o) => Math.max(o.low, o.high - config.fanoutHistoryPerPartition));
const hub = new Hub(TOPICS.captions.partitions, starts, config.fanoutHistoryPerPartition, config.fanoutMaxBackpressure, postgresArchive(db), {
  delivered: (n) => deliveries.inc(n),
  slowClosed: () => slow.inc(),
  // Records read while warming the history up are old news, not latency.
  fannedOut: (partition, offset, receivedAt) => {
    if (offset >= ends[partition]!.high) e2e.observe(Math.max(0, Date.now() - receivedAt) / 1000);
  },
}, 30_000, ends.map((o) => o.high));

const consumer = await log.consume({
  groupId: EventLog.privateGroup('castlog-fanout'),
  topics: ['captions'],
  startAt: async (_topic, partition) => hub.history(partition).next,
  onPoison: (topic, partition, offset, err) => logger.error({ topic, partition, offset, err: String(err) }, 'undecodable record skipped'),
  onBatch: async (batch) => {
    const next = hub.history(batch.partition).next;
    if (batch.firstOffset > next) return { seek: next }; // never skip: read the hole first
    hub.onRecords(batch.partition, batch.records.map((r) => ({ offset: r.offset, data: r.event.data as CaptionFragmentReceived })));
    return undefined;
  },
});
app.onClose(() => consumer.stop());

const server = await startFanoutServer(hub, {
  port: config.fanoutPort,
  maxBackpressure: config.fanoutMaxBackpressure,
  metrics,
  ready: async () => (await pingDb(db)) && (await log.ping()),
});
new prom.Gauge({ name: 'castlog_fanout_connections', help: 'Open WebSockets', registers: [metrics], collect() { this.set(server.connections()); } });
new prom.Gauge({ name: 'castlog_fanout_subscriptions', help: 'Channel subscriptions', registers: [metrics], collect() { this.set(hub.subscriptionCount()); } });
app.onClose(() => server.close());
logger.info({ url: `ws://localhost:${server.port}/v1/live` }, 'fanout listening');
