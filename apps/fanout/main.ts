// The fanout process: tails every partition of `captions` (its own consumer group, so each
// instance sees everything) and pushes captions to subscribed browsers.
import { boot, retry } from '../boot.ts';
import { pingDb } from '../../infra/db.ts';
import { EventLog } from '../../infra/kafka/index.ts';
import { prom, LATENCY_BUCKETS } from '../../infra/metrics.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { postgresArchive, postgresReplaySource } from './archive.ts';
import { Replayer } from './replay.ts';
import { captionsFeed, userEventsFeed } from './feeds.ts';
import { Hub } from './hub.ts';
import { startFanoutServer } from './server.ts';
import { userTokensOf } from '../../infra/config.ts';

const app = await boot('fanout');
const { config, log, db, metrics, logger } = app;
await retry(() => log.ensureTopics(), logger, 'ensure topics');

const deliveries = new prom.Counter({ name: 'castlog_fanout_deliveries_total', help: 'Messages handed to WebSockets', registers: [metrics] });
const slow = new prom.Counter({ name: 'castlog_fanout_slow_consumers_total', help: 'Clients closed for falling behind', registers: [metrics] });
const e2e = new prom.Histogram({ name: 'castlog_e2e_latency_seconds', help: 'From ingest to the fanout handing the caption to subscribers', buckets: LATENCY_BUCKETS, registers: [metrics] });

// Start far enough back that clients resuming after a short absence are served from memory.
const topics = ['captions', 'streams', 'uploads', 'encodes'] as const;
const ends = Object.fromEntries(await Promise.all(topics.map(async (t) => [t, await retry(() => log.offsets(t), logger, 'read offsets')] as const)));
const starts = (t: (typeof topics)[number]) => ends[t]!.map((o) => Math.max(o.low, o.high - config.fanoutHistoryPerPartition));
const stats = (t: (typeof topics)[number]) => ({
  delivered: (n: number) => deliveries.inc(n),
  slowClosed: () => slow.inc(),
  // Records read while warming the history up are old news, not latency.
  fannedOut: (partition: number, offset: number, at: number) => {
    if (t === 'captions' && offset >= ends[t]![partition]!.high) e2e.observe(Math.max(0, Date.now() - at) / 1000);
  },
});
// A `since` past what this fanout has seen is checked against Kafka before it is refused.
const logEnd = (t: (typeof topics)[number]) => async (partition: number) => (await log.offsets(t)).find((o) => o.partition === partition)?.high ?? 0;
const hubs = {
  captions: new Hub(TOPICS.captions.partitions, starts('captions'), config.fanoutHistoryPerPartition, config.fanoutMaxBackpressure, postgresArchive(db), stats('captions'), 30_000, ends.captions!.map((o) => o.high), captionsFeed(), logEnd('captions')),
  // A user's own events are served from memory only: older ones are in the read model's current state.
  replays: new Replayer(postgresReplaySource(db), config.fanoutMaxBackpressure),
  users: new Hub(TOPICS.streams.partitions, starts('streams'), config.fanoutHistoryPerPartition, config.fanoutMaxBackpressure, undefined, stats('streams'), 30_000, ends.streams!.map((o) => o.high), userEventsFeed(), logEnd('streams')),
};
const activity = {
  uploads: new Hub(TOPICS.uploads.partitions, starts('uploads'), config.fanoutHistoryPerPartition, config.fanoutMaxBackpressure, undefined, stats('uploads'), 30_000, ends.uploads!.map((o) => o.high), userEventsFeed('uploads')),
  encodes: new Hub(TOPICS.encodes.partitions, starts('encodes'), config.fanoutHistoryPerPartition, config.fanoutMaxBackpressure, undefined, stats('encodes'), 30_000, ends.encodes!.map((o) => o.high), userEventsFeed('encodes')),
};
const byTopic: Record<string, Hub> = { captions: hubs.captions, streams: hubs.users, ...activity };
const hubOf = (topic: string): Hub => byTopic[topic]!;

const consumer = await log.consume({
  groupId: EventLog.privateGroup('castlog-fanout'),
  topics: [...topics],
  startAt: async (topic, partition) => hubOf(topic).history(partition).next,
  onPoison: (topic, partition, offset, err) => logger.error({ topic, partition, offset, err: String(err) }, 'undecodable record skipped'),
  onBatch: async (batch) => {
    const hub = hubOf(batch.topic);
    const next = hub.history(batch.partition).next;
    if (batch.firstOffset > next) return { seek: next }; // never skip: read the hole first
    hub.onRecords(batch.partition, batch.records.map((r) => ({ offset: r.offset, data: r.event.data, type: r.event.type, meta: r.meta })), batch.highWatermark);
    return undefined;
  },
});
app.onClose(() => consumer.stop());

const server = await startFanoutServer({ ...hubs, activity: Object.values(activity) }, {
  port: config.fanoutPort,
  maxBackpressure: config.fanoutMaxBackpressure,
  metrics,
  ready: async () => (await pingDb(db)) && (await log.ping()),
  tokens: userTokensOf(config),
  origins: { allowed: config.allowedOrigins, apiPort: config.apiPort },
});
new prom.Gauge({ name: 'castlog_fanout_connections', help: 'Open WebSockets', registers: [metrics], collect() { this.set(server.connections()); } });
new prom.Gauge({ name: 'castlog_fanout_subscriptions', help: 'Channel subscriptions', registers: [metrics], collect() { this.set(hubs.captions.subscriptionCount() + hubs.users.subscriptionCount()); } });
app.onClose(() => server.close());
logger.info({ url: `ws://localhost:${server.port}/v1/live` }, 'fanout listening');
