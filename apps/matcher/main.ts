// The matcher process: keeps every alert in memory from the `alerts` topic, matches captions (a
// consumer group on `captions`, so copies share its partitions), records each match once in
// Postgres with the e-mail and webhook it causes, and publishes it as AlertMatched.
import { EventLog } from '../../infra/kafka/index.ts';
import { prom, serveMetrics } from '../../infra/metrics.ts';
import { pingDb } from '../../infra/db.ts';
import { ensureRegistered } from '../../projections/versions.ts';
import { runProjection } from '../projector/runner.ts';
import { boot, retry } from '../boot.ts';
import { AlertBook } from './alert-book.ts';
import { matcherProcessor } from './processor.ts';
import { MatchPublisher } from './publisher.ts';

const app = await boot('matcher');
const { config, log, db, logger, metrics } = app;
await retry(() => log.ensureTopics(), logger, 'ensure topics', Infinity);

const book = new AlertBook();
const alertsGauge = new prom.Gauge({ name: 'castlog_matcher_alerts', help: 'Alerts the matcher holds', registers: [metrics] });
const matchesTotal = new prom.Counter({ name: 'castlog_matcher_matches_total', help: 'Matches recorded', registers: [metrics] });
const published = new prom.Counter({
  name: 'castlog_matcher_published_total',
  help: 'Matches published as AlertMatched',
  registers: [metrics],
});

// Every alert there is, before the first caption is matched: read the topic to its end as it is now.
const ends = await retry(() => log.offsets('alerts'), logger, 'read alert offsets', Infinity);
const next = new Map(ends.map((e) => [e.partition, e.low]));
let caughtUp!: () => void;
const ready = new Promise<void>((resolve) => (caughtUp = resolve));
const checkCaughtUp = () => ends.every((e) => (next.get(e.partition) ?? 0) >= e.high) && caughtUp();
checkCaughtUp();
const alerts = await log.consume({
  groupId: EventLog.privateGroup('castlog-matcher-alerts'),
  topics: ['alerts'],
  startAt: async (_topic, partition) => ends.find((e) => e.partition === partition)?.low ?? 0,
  onPoison: (topic, partition, offset, err) => logger.error({ topic, partition, offset, err }, 'undecodable record skipped'),
  onBatch: async (batch) => {
    for (const r of batch.records) book.apply(r);
    if (batch.records.length) next.set(batch.partition, batch.records.at(-1)!.offset + 1);
    alertsGauge.set(book.size);
    checkCaughtUp();
  },
});
app.onClose(() => alerts.stop());
await ready;
logger.info({ alerts: book.size }, 'alerts loaded');

const publisher = new MatchPublisher(db, log, logger, (n) => published.inc(n));
app.onClose(() => publisher.stop());
const processor = matcherProcessor(book, (n) => {
  matchesTotal.inc(n);
  if (n > 0) publisher.wake();
});
await retry(() => ensureRegistered(db, processor), logger, 'register the matcher');
// A new matcher starts with the captions arriving now; after that, from its stored positions.
const running = await runProjection(app, processor, 1, { startAtEnd: true, durable: true });
app.onClose(() => running.stop());

const server = serveMetrics(metrics, config.matcherPort, async () => (await pingDb(db)) && (await log.ping()));
app.onClose(() => new Promise((r) => server.close(r)));
logger.info({ port: config.matcherPort }, 'matcher running');
