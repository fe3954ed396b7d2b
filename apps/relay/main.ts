// The relay process: wiring only. One copy publishes at a time (the lock in lock.ts); others wait
// as standbys, and a copy that loses the lock (Postgres restarted) takes it again by itself
// (runner.ts). It wakes on NOTIFY from appends and polls as a fallback.
import { boot, retry } from '../boot.ts';
import { pingDb } from '../../infra/db.ts';
import { prom, serveMetrics } from '../../infra/metrics.ts';
import { RelayRunner } from './runner.ts';

// The relay answers no user: it can wait for Kafka rather than fail and republish.
const app = await boot('relay', { appendTimeoutMs: 10_000, background: true });
const { db, log, logger, metrics, config } = app;
await retry(() => log.ensureTopics(), logger, 'ensure topics', Infinity);
const published = new prom.Counter({ name: 'castlog_relay_events_total', help: 'Events published to Kafka', registers: [metrics] });
const active = new prom.Gauge({
  name: 'castlog_relay_active',
  help: '1 while this copy holds the relay lock and publishes, 0 as a standby',
  registers: [metrics],
});
const heldBack = new prom.Gauge({
  name: 'castlog_relay_held_back_seconds',
  help: 'How long the open transaction keeping committed events from being published has been running (0 when none waits)',
  registers: [metrics],
});
const server = serveMetrics(metrics, config.relayPort, async () => (await pingDb(db)) && (await log.ping()));
app.onClose(() => new Promise((r) => server.close(r)));

const runner = new RelayRunner({
  databaseUrl: config.databaseUrl,
  db,
  log,
  logger,
  onPublished: (n) => published.inc(n),
  onHeldBack: (seconds) => heldBack.set(seconds),
  onActive: (on) => active.set(on ? 1 : 0),
});
// Registered last, so it runs first on close: publishing stops before Kafka and Postgres close.
app.onClose(() => runner.stop());
runner.run().catch((err) => {
  logger.error({ err }, 'relay loop failed');
  process.exit(1);
});
