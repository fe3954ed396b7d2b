// The relay process. One copy is active at a time (a Postgres advisory lock); others wait as
// standbys. It wakes on NOTIFY from appends and polls as a fallback.
import pg from 'pg';
import { boot, retry } from '../boot.ts';
import { pingDb } from '../../infra/db.ts';
import { prom, serveMetrics } from '../../infra/metrics.ts';
import { Relay } from './relay.ts';

const LOCK_KEY = 0x636173746c6f67n; // "castlog"
// The relay answers no user: it can wait for Kafka rather than fail and republish.
const app = await boot('relay', { appendTimeoutMs: 10_000 });
const { db, log, logger, metrics, config } = app;
await retry(() => log.ensureTopics(), logger, 'ensure topics', Infinity);
const published = new prom.Counter({ name: 'castlog_relay_events_total', help: 'Events published to Kafka', registers: [metrics] });
const server = serveMetrics(metrics, Number(process.env.RELAY_PORT ?? 8083), async () => (await pingDb(db)) && (await log.ping()));
app.onClose(() => new Promise((r) => server.close(r)));

let wake: (() => void) | undefined;
let stopping = false;

async function holdLockAndListen(): Promise<pg.Client> {
  for (;;) {
    const client = new pg.Client({ connectionString: config.databaseUrl });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const { rows } = await client.query('SELECT pg_try_advisory_lock($1) AS ok', [LOCK_KEY.toString()]);
      if (rows[0].ok) {
        client.on('notification', () => wake?.());
        await client.query('LISTEN castlog_events');
        return client;
      }
    } catch (err) {
      logger.warn({ err: String(err) }, 'relay lock: database unavailable');
    }
    await client.end().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1000)); // standby: another copy is active
  }
}

const lock = await holdLockAndListen();
app.onClose(() => lock.end().catch(() => undefined));
// Registered last, so it runs first on close: the lock connection ending is then expected.
app.onClose(() => {
  stopping = true;
  wake?.();
});
lock.on('end', () => {
  if (!stopping) {
    logger.error('lost the relay lock connection; exiting so a standby can take over');
    process.exit(1);
  }
});
const relay = new Relay(db, log, logger);
await retry(() => relay.loadCheckpoint(), logger, 'load checkpoint', Infinity);
logger.info('relay active');

while (!stopping) {
  try {
    const n = await relay.step();
    published.inc(n);
    if (n > 0) continue;
  } catch (err) {
    logger.warn({ err: String(err) }, 'relay step failed; retrying');
    await new Promise((r) => setTimeout(r, 500));
    continue;
  }
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 250);
    wake = () => (clearTimeout(t), resolve());
  });
}
