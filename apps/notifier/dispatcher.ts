// The notifier's loop: claims what is due (webhooks one by one, e-mails one alert's digest at a
// time), sends it, and records the attempt — up to NOTIFIER_CONCURRENCY sends at once. It sleeps
// until a NOTIFY says something new is due, a send finishes, or the next poll.
import { userAlerts, userAlertsStream, type AlertDefinition } from '../../domain/alerts/alerts.ts';
import type { Config } from '../../infra/config.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import type { Logger } from '../../infra/logger.ts';
import { prom, type Registry } from '../../infra/metrics.ts';
import { retry, wakeableSleep } from '../../infra/retry.ts';
import { unsubscribeToken, webhookSecret, webhookSignature } from '../../infra/signing.ts';
import { alertEmail, type EmailMatch } from './email-message.ts';
import type { Mailer } from './mailer.ts';
import type { AttemptOutcome, Delivery, Outbox } from './outbox.ts';
import { sendWebhook } from './webhook-sender.ts';

/** Longest sleep between two looks at the outbox when nothing wakes the loop. */
const POLL_MS = 1000;
/** Alerts whose e-mail is looked at per pass. */
const EMAIL_ALERTS_PER_PASS = 50;

export interface DispatcherDeps {
  outbox: Outbox;
  /** Undefined when SMTP_URL is unset: e-mails are then given up, saying so. */
  mailer: Mailer | undefined;
  store: EventStore;
  config: Config & { signingSecret: string };
  logger: Logger;
  metrics: Registry;
  /** Resolves webhook hosts (tests may pass their own). */
  resolve?: Parameters<typeof sendWebhook>[1]['resolve'];
}

/** The body POSTed: the payload's JSON, its type and id first (a receiver reads those first). */
export function webhookBody(payload: unknown): string {
  const p = payload as Record<string, unknown>;
  return JSON.stringify({ type: p.type, id: p.id, ...p });
}

/** Whose webhook secret signs a delivery: its alert's, or its encode job's. */
export const signingSubject = (d: Delivery): string => (d.alert_id ? `alert:${d.alert_id}` : `encode:${d.job_id}`);

export class Dispatcher {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly sleeper = wakeableSleep();
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly attempts: prom.Counter<'kind' | 'outcome'>;

  constructor(private readonly deps: DispatcherDeps) {
    this.attempts = new prom.Counter({
      name: 'castlog_delivery_attempts_total',
      help: 'Delivery attempts by kind (email, webhook) and outcome (sent, retry, failed, cancelled)',
      labelNames: ['kind', 'outcome'],
      registers: [deps.metrics],
    });
  }

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  /** Something may be due: look now. */
  wake(): void {
    this.sleeper.wake();
  }

  /** Stops claiming and waits for the sends under way to be recorded. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loop;
    await Promise.all(this.inFlight);
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        await this.pass();
      } catch (err) {
        this.deps.logger.warn({ err }, 'looking for due deliveries failed; trying again');
      }
      if (this.running) await this.sleeper.sleep(await this.untilNextDue());
    }
  }

  /** How long to sleep: until the next delivery is due, at most POLL_MS (a send that ends wakes it). */
  private async untilNextDue(): Promise<number> {
    if (this.free() <= 0) return POLL_MS;
    const due = await this.deps.outbox.nextDueAt().catch(() => undefined);
    return due === undefined ? POLL_MS : Math.max(10, Math.min(POLL_MS, due - Date.now()));
  }

  private free(): number {
    return this.deps.config.notifierConcurrency - this.inFlight.size;
  }

  /** Claims and starts what is due, as far as there is room. */
  private async pass(): Promise<void> {
    const { outbox, config } = this.deps;
    for (const d of await outbox.claimWebhooks(this.free(), Date.now())) this.launch([d], () => this.sendWebhook(d));
    if (this.free() <= 0) return;
    for (const alertId of await outbox.alertsWithEmailDue(EMAIL_ALERTS_PER_PASS, Date.now())) {
      if (this.free() <= 0 || !this.running) return;
      const batch = await outbox.claimEmails(alertId, config.alertEmailIntervalMs, Date.now());
      if (batch.length) this.launch(batch, () => this.sendEmail(batch));
    }
  }

  /** Runs one send; whatever it throws becomes a failed attempt to try again. */
  private launch(claimed: Delivery[], send: () => Promise<AttemptOutcome | string>): void {
    const startedAt = Date.now();
    const task = (async () => {
      let outcome: AttemptOutcome | string;
      try {
        outcome = await send();
      } catch (err) {
        this.deps.logger.warn({ err, ids: claimed.map((d) => d.id) }, 'a send failed in the notifier itself; it is tried again');
        outcome = { startedAt, durationMs: Date.now() - startedAt, status: null, error: `notifier: ${String(err).slice(0, 300)}` };
      }
      await this.record(claimed, outcome);
    })().finally(() => {
      this.inFlight.delete(task);
      this.wake(); // room for the next one
    });
    this.inFlight.add(task);
  }

  /** Records the attempt (or the cancellation, a string) until the database takes it. */
  private async record(claimed: Delivery[], outcome: AttemptOutcome | string): Promise<void> {
    const { outbox, logger } = this.deps;
    const kind = claimed[0]!.kind;
    await retry(() => (typeof outcome === 'string' ? outbox.cancel(claimed, outcome) : outbox.finish(claimed, outcome, Date.now())), {
      delayMs: 200,
      factor: 2,
      maxDelayMs: 5000,
      onRetry: (err) => logger.warn({ err, ids: claimed.map((d) => d.id) }, 'recording a delivery attempt failed; trying again'),
    });
    const label = typeof outcome === 'string' ? 'cancelled' : outcome.error === null ? 'sent' : outcome.permanent ? 'failed' : 'retry';
    this.attempts.inc({ kind, outcome: label }, claimed.length);
    if (typeof outcome !== 'string' && outcome.error !== null) {
      logger.info({ ids: claimed.map((d) => d.id), kind, error: outcome.error }, 'delivery attempt failed');
    }
  }

  /** The alert a delivery is for, as decided now; undefined once it was deleted. */
  private async alertOf(d: Delivery): Promise<AlertDefinition | undefined> {
    const { state } = await this.deps.store.load(userAlertsStream(d.user_id), userAlerts.initialState, userAlerts.evolve);
    return state.alerts.find((a) => a.alertId === d.alert_id);
  }

  private async sendWebhook(d: Delivery): Promise<AttemptOutcome | string> {
    const { config } = this.deps;
    if (d.alert_id && !(await this.alertOf(d))) return 'the alert was deleted';
    const body = webhookBody(d.payload);
    const secret = webhookSecret(config.signingSecret, signingSubject(d));
    const startedAt = Date.now();
    const result = await sendWebhook(
      {
        url: d.target,
        body,
        headers: {
          'Castlog-Event': String((d.payload as { type?: unknown }).type ?? 'unknown'),
          'Castlog-Delivery': String(d.id),
          'Castlog-Signature': webhookSignature(secret, body, Math.floor(startedAt / 1000)),
        },
      },
      { allowedHosts: config.webhookAllowedHosts, timeoutMs: config.webhookTimeoutMs, resolve: this.deps.resolve },
    );
    return { startedAt, durationMs: Date.now() - startedAt, ...result };
  }

  private async sendEmail(batch: Delivery[]): Promise<AttemptOutcome | string> {
    const { config, mailer } = this.deps;
    const first = batch[0]!;
    const alert = await this.alertOf(first);
    if (!alert) return 'the alert was deleted';
    if (!alert.email) return 'unsubscribed';
    if (!mailer) return 'e-mail is not set up here (SMTP_URL is unset)';
    const token = unsubscribeToken(config.signingSecret, first.user_id, alert.alertId);
    const unsubscribe = `${config.publicApiUrl}/v1/unsubscribe?token=${token}`;
    const message = alertEmail(
      batch.map((d) => d.payload as EmailMatch),
      { alertsPage: `${config.publicApiUrl}/alerts`, unsubscribe },
    );
    const startedAt = Date.now();
    const result = await mailer.send(first.target, message, unsubscribe, {
      'X-Castlog-Alert': alert.alertId,
      'X-Castlog-Deliveries': batch.map((d) => d.id).join(', '),
    });
    return { startedAt, durationMs: Date.now() - startedAt, ...result };
  }
}
