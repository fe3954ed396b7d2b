// A notifier's liveness: the lock named after its current id, held by a session of its own that
// also LISTENs for new deliveries. While it holds one, the outbox claims under that id; a delivery
// left 'sending' under an id whose lock is free was being sent by a notifier that is gone. When the
// session ends (Postgres restarted, the connection cut), claiming stops at once and a new id is
// taken with a new lock: what was in flight under the old one may be marked interrupted by any
// notifier, so nothing is ever sent twice, and the process itself carries on.
import { randomUUID } from 'node:crypto';
import { LOCKS } from '../../infra/locks.ts';
import type { Logger } from '../../infra/logger.ts';
import { retry } from '../../infra/retry.ts';
import { trySessionLock, type HeldLock } from '../../infra/session-lock.ts';
import type { Outbox } from './outbox.ts';

/** The channel the outbox's trigger NOTIFYs when a delivery becomes pending. */
const DUE = 'castlog_deliveries';

export class Liveness {
  private lock: HeldLock | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;

  constructor(
    private readonly databaseUrl: string,
    private readonly outbox: Outbox,
    private readonly onDue: () => void,
    private readonly logger: Logger,
  ) {}

  /** Resolves once the first lock is held. */
  async start(): Promise<void> {
    await this.take();
    this.running = this.keep();
  }

  private async take(): Promise<void> {
    const id = randomUUID();
    const lock = await retry(
      async () => {
        const held = await trySessionLock(this.databaseUrl, LOCKS.notifier(id), DUE, this.onDue);
        if (!held) throw new Error(`lock ${LOCKS.notifier(id)} is held by another session`);
        return held;
      },
      {
        delayMs: 500,
        factor: 2,
        maxDelayMs: 5000,
        stopped: () => this.stopped,
        onRetry: (err) => this.logger.warn({ err }, 'taking the notifier lock failed; trying again'),
      },
    );
    if (!lock) return;
    this.lock = lock;
    this.outbox.holder = id;
    this.onDue();
    this.logger.info({ id }, 'notifier lock held');
  }

  private async keep(): Promise<void> {
    while (!this.stopped && this.lock) {
      await this.lock.lost;
      this.outbox.holder = undefined;
      this.lock = undefined;
      if (this.stopped) return;
      this.logger.warn('the session holding the notifier lock ended: claiming stopped, taking a new lock');
      await this.take();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.outbox.holder = undefined;
    await this.lock?.release();
    await this.running;
  }
}
