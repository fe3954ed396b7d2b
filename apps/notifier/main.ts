// The notifier process: sends the outbox's e-mails and webhooks (dispatcher.ts over outbox.ts),
// and turns encode jobs' outcomes into webhook deliveries (a consumer group on `encodes`). Run as
// many as needed: claims skip each other's rows. Each holds a lock of its own while it lives
// (liveness.ts), so a delivery a dead notifier left 'sending' is found and marked 'interrupted' —
// never sent again by itself, since it may have arrived.
import { boot, retry } from '../boot.ts';
import { pingDb } from '../../infra/db.ts';
import { PostgresEventStore } from '../../infra/eventstore/postgres.ts';
import { serveMetrics } from '../../infra/metrics.ts';
import { retry as retryWith, sleep } from '../../infra/retry.ts';
import { Dispatcher } from './dispatcher.ts';
import { encodeWebhookHandler } from './encode-webhooks.ts';
import { Liveness } from './liveness.ts';
import { Mailer } from './mailer.ts';
import { Outbox } from './outbox.ts';

/** How often deliveries left 'sending' by a notifier that is gone are looked for. */
const SWEEP_MS = 5000;
const GROUP = 'castlog-notifier';

// Few connections: claims, records and the encodes consumer are short; the lock has its own session.
const app = await boot('notifier', { poolSize: 4 });
const { config, logger, log, db } = app;
const signingSecret = config.signingSecret;
if (!signingSecret) {
  logger.error('SIGNING_SECRET is not set: webhooks cannot be signed nor unsubscribe links made; the notifier does not run');
  process.exit(1);
}

const outbox = new Outbox(db, {
  baseMs: config.deliveryRetryBaseMs,
  maxMs: config.deliveryRetryMaxMs,
  windowMs: config.deliveryRetryWindowMs,
});
const mailer = config.smtpUrl ? new Mailer(config.smtpUrl, config.mailFrom) : undefined;
if (mailer) app.onClose(() => mailer.close());
else logger.warn('SMTP_URL is not set: alert e-mails are given up, saying so');
const dispatcher = new Dispatcher({
  outbox,
  mailer,
  store: new PostgresEventStore(db, log.codec),
  config: { ...config, signingSecret },
  logger,
  metrics: app.metrics,
});

// Claims only while it holds its lock (liveness.ts); a lost session means a new lock, not an exit.
const liveness = new Liveness(config.databaseUrl, outbox, () => dispatcher.wake(), logger);
await liveness.start();
app.onClose(() => liveness.stop());

let sweeping = true;
void (async () => {
  while (sweeping) {
    const swept = await outbox.sweepInterrupted(Date.now()).catch((err: unknown) => (logger.warn({ err }, 'sweep failed'), []));
    if (swept.length)
      logger.warn({ ids: swept }, 'deliveries a stopped notifier left mid-send are marked interrupted (redeliver to send them)');
    await sleep(SWEEP_MS);
  }
})();
app.onClose(() => {
  sweeping = false;
});

dispatcher.start();
app.onClose(() => dispatcher.stop());

await retry(() => log.ensureTopics(), logger, 'ensure topics', Infinity);
const onBatch = encodeWebhookHandler(db, config, logger);
const consumer = await retry(
  () =>
    log.consume({
      groupId: GROUP,
      topics: ['encodes'],
      commit: true,
      // A partition this group never committed is read from its start, so a request made before the
      // first notifier ran still gets its webhook; after that, the group's offsets (rows are once by cause).
      startAt: async (topic, partition) => {
        const committed = await retryWith(() => log.committed(GROUP, topic), { attempts: 10, delayMs: 500 }).catch(() => undefined);
        return committed && (committed.get(partition) ?? -1) < 0 ? 0 : undefined;
      },
      onPoison: (topic, partition, offset, error) => logger.error({ topic, partition, offset, err: error }, 'undecodable record skipped'),
      onBatch,
    }),
  logger,
  'join the notifier group',
);
app.onClose(() => consumer.stop());

const server = serveMetrics(app.metrics, config.notifierPort, async () => (await pingDb(db)) && (await log.ping()));
app.onClose(() => new Promise((r) => server.close(r)));
logger.info({ port: config.notifierPort, smtp: Boolean(mailer) }, 'notifier running');
