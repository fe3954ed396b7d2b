// The fanout process: tails every partition of `captions` and of the user topics (consumer groups of
// its own, so each instance sees everything) and pushes what it reads to subscribed browsers.
import { boot, retry } from '../boot.ts';
import { pingDb } from '../../infra/db.ts';
import { EventLog } from '../../infra/kafka/index.ts';
import { prom } from '../../infra/metrics.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { postgresArchive, postgresReplaySource } from './archive.ts';
import { Replayer } from './replay.ts';
import { captionsFeed, userEventsFeed } from './feeds.ts';
import { Hub } from './hub.ts';
import { startFanoutServer } from './server.ts';
import { userTokensOf } from '../../infra/config.ts';
import { fanoutMetrics } from './metrics.ts';

const app = await boot('fanout');
const { config, log, db, metrics, logger } = app;
await retry(() => log.ensureTopics(), logger, 'ensure topics');

const { deliveries, slowClosed: slow, e2e } = fanoutMetrics(metrics);

// Start far enough back that clients resuming after a short absence are served from memory.
const topics = ['captions', 'streams', 'uploads', 'encodes', 'alerts'] as const;
const ends = Object.fromEntries(
  await Promise.all(topics.map(async (t) => [t, await retry(() => log.offsets(t), logger, 'read offsets')] as const)),
);
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
const logEnd = (t: (typeof topics)[number]) => async (partition: number) =>
  (await log.offsets(t)).find((o) => o.partition === partition)?.high ?? 0;
const common = { historyCapacity: config.fanoutHistoryPerPartition, maxBackpressure: config.fanoutMaxBackpressure };
const hubs = {
  captions: new Hub({
    ...common,
    partitions: TOPICS.captions.partitions,
    startOffsets: starts('captions'),
    liveFrom: ends.captions!.map((o) => o.high),
    archive: postgresArchive(db),
    stats: stats('captions'),
    feed: captionsFeed(),
    logEnd: logEnd('captions'),
  }),
  // A user's own events: stream decisions (keyed by user, so resumable), and upload and encode
  // progress and alert matches live on the same channel. Served from memory only: older ones are in the read
  // model's current state.
  users: new Hub({
    ...common,
    partitions: TOPICS.streams.partitions,
    startOffsets: starts('streams'),
    liveFrom: ends.streams!.map((o) => o.high),
    stats: stats('streams'),
    feed: userEventsFeed(),
    logEnd: logEnd('streams'),
    liveSources: (['uploads', 'encodes', 'alerts'] as const).map((t) => ({
      topic: t,
      partitions: TOPICS[t].partitions,
      startOffsets: starts(t),
      liveFrom: ends[t]!.map((o) => o.high),
      feed: userEventsFeed(t),
    })),
  }),
  replays: new Replayer(postgresReplaySource(db), config.fanoutMaxBackpressure),
};
/**
 * Each hub's topics are read by a consumer of its own. A fetch asks for every partition of its
 * consumer, and kafkajs makes a batch, a promise and a heartbeat check of each, records or not:
 * read together, the user topics' 24 mostly idle partitions were most of what each of the fetches
 * a busy captions topic makes cost (its garbage collections the most of the fanout's pauses).
 */
const readers = [
  { hub: hubs.captions, topics: ['captions'] as const },
  { hub: hubs.users, topics: topics.filter((t) => t !== 'captions') },
].map(({ hub, topics }) => {
  // Streams are the users hub's own partitions; the others are live sources beside them.
  const liveSource = (topic: string) => (hub === hubs.users && topic !== 'streams' ? topic : undefined);
  return log.consume({
    groupId: EventLog.privateGroup(`castlog-fanout-${topics[0]}`),
    topics: [...topics],
    startAt: async (topic, partition) => hub.history(partition, liveSource(topic)).next,
    onPoison: (topic, partition, offset, err) => logger.error({ topic, partition, offset, err }, 'undecodable record skipped'),
    onBatch: async (batch) => {
      const source = liveSource(batch.topic);
      const next = hub.history(batch.partition, source).next;
      if (batch.firstOffset > next) return { seek: next }; // never skip: read the hole first
      const records = batch.records.map((r) => ({ offset: r.offset, data: r.event.data, type: r.event.type, meta: r.meta }));
      if (source) hub.onLiveRecords(source, batch.partition, records);
      else hub.onRecords(batch.partition, records, batch.highWatermark);
      await hub.written(); // the next fetch should bring what arrived while these went out
      return undefined;
    },
  });
});
for (const consumer of await Promise.all(readers)) app.onClose(() => consumer.stop());

const server = await startFanoutServer(hubs, {
  port: config.fanoutPort,
  maxBackpressure: config.fanoutMaxBackpressure,
  metrics,
  ready: async () => (await pingDb(db)) && (await log.ping()),
  tokens: userTokensOf(config),
  origins: { allowed: config.allowedOrigins, apiPort: config.apiPort },
  writeSlices: config.fanoutWriteSlices,
  writesPerTurn: config.fanoutWritesPerTurn,
});
new prom.Gauge({
  name: 'castlog_fanout_connections',
  help: 'Open WebSockets',
  registers: [metrics],
  collect() {
    this.set(server.connections());
  },
});
new prom.Gauge({
  name: 'castlog_fanout_subscriptions',
  help: 'Channel subscriptions',
  registers: [metrics],
  collect() {
    this.set(hubs.captions.subscriptionCount() + hubs.users.subscriptionCount());
  },
});
app.onClose(() => server.close());
logger.info({ url: `ws://localhost:${server.port}/v1/live` }, 'fanout listening');
