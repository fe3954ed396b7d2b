// Runs the relay for as long as the process lives: take the lock (or wait as a standby), publish
// while it is held, and when it is lost stop publishing at once and go back to taking it. A
// Postgres restart is an interruption, not the end of the process. Another copy may win the lock
// meanwhile: events are published at least once, and consumers drop repeats by (stream, version).
import type { Db } from '../../projections/database.ts';
import type { EventLog } from '../../infra/kafka/index.ts';
import type { Logger } from '../../infra/logger.ts';
import { tryRelayLock, type HeldLock } from './lock.ts';
import { Relay } from './relay.ts';
import { sleep, wakeableSleep } from '../../infra/retry.ts';

/** First wait before looking again for an announced append not yet visible; doubles up to the poll. */
const OWED_FIRST_MS = 5;
/** See RelayRunnerOptions.gatherMs. At 500 decisions/s, alternated: none p50 / p99 4.1–5.2 / 22.5–34.8 ms,
 *  10 ms 2.2–2.8 / 13.0–18.8, 25 ms 1.7–2.0 / 10.0–15.2. */
const GATHER_MS = 25;
/** While steps find nothing, how often to ask what holds committed events back (one query). */
const HELD_LOOK_MS = 1000;
/** A transaction holding events back this long is logged as a warning, naming it, once. */
const HELD_WARN_S = 5;

export interface RelayRunnerOptions {
  databaseUrl: string;
  db: Db;
  log: EventLog;
  logger: Logger;
  /** Called with the number of events each step published. */
  onPublished?: (n: number) => void;
  /** Called with how long the transaction keeping committed events back has been running (0: none). */
  onHeldBack?: (seconds: number) => void;
  /** Called when this copy becomes the active one, and when it stops being it. */
  onActive?: (active: boolean) => void;
  /** How long to wait between attempts at the lock (standby, or Postgres away). */
  retryMs?: number;
  /** How long to wait for a notification before looking for new events anyway. */
  pollMs?: number;
  /**
   * After a step that published fewer events than a full batch, how long to let the next ones
   * gather before looking again (notifications do not cut it short). Stepping at every
   * notification made a step, and an empty one after it, per decision: at 500 decisions/s, four
   * Postgres statements and a produce request each, on the cores the decisions need.
   */
  gatherMs?: number;
}

export class RelayRunner {
  private stopping = false;
  private readonly sleeper = wakeableSleep();
  /** An append was announced since the last step began. */
  private notified = false;
  private running: Promise<void> | undefined;

  constructor(private readonly opts: RelayRunnerOptions) {}

  /** Starts the loop; resolves once stop() has ended it. */
  run(): Promise<void> {
    return (this.running ??= this.loop());
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.sleeper.wake();
    await this.running;
  }

  private async loop(): Promise<void> {
    const { logger } = this.opts;
    while (!this.stopping) {
      const lock = await this.takeLock();
      if (!lock) break;
      try {
        await this.publishWhileHeld(lock);
      } finally {
        await lock.release();
      }
      if (!this.stopping) logger.warn('lost the relay lock connection; stopped publishing, taking the lock again');
    }
  }

  /** Waits until this copy holds the lock; undefined when stopping first. */
  private async takeLock(): Promise<HeldLock | undefined> {
    const { logger, databaseUrl } = this.opts;
    let said: 'standby' | 'unavailable' | undefined;
    while (!this.stopping) {
      try {
        const lock = await tryRelayLock(databaseUrl, () => {
          this.notified = true;
          this.sleeper.wake();
        });
        if (lock) return lock;
        if (said !== 'standby') logger.info('relay standby: another copy holds the lock');
        said = 'standby';
      } catch (err) {
        if (said !== 'unavailable') logger.warn({ err }, 'relay lock: database unavailable; retrying');
        said = 'unavailable';
      }
      await this.pause(this.opts.retryMs ?? 1000);
    }
    return undefined;
  }

  private async publishWhileHeld(lock: HeldLock): Promise<void> {
    const { db, log, logger } = this.opts;
    let held = true;
    void lock.lost.then(() => {
      held = false;
      this.sleeper.wake();
    });
    const stillHeld = () => held && !this.stopping;
    const relay = new Relay(db, log, logger);
    // The checkpoint is read afresh each time the lock is taken: another copy may have moved it.
    while (stillHeld()) {
      try {
        await relay.loadCheckpoint();
        break;
      } catch (err) {
        logger.warn({ err }, 'load checkpoint failed; retrying');
        await this.pause(500);
      }
    }
    if (!stillHeld()) return;
    logger.info('relay active');
    this.opts.onActive?.(true);
    const pollMs = this.opts.pollMs ?? 250;
    // An append was announced and not seen yet: it is held back behind an older transaction still
    // running (in this database, or one the relay cannot place: see HORIZON), and no second
    // notification comes when that one ends. Looked for again soon, backing off to the poll.
    let owedMs = 0;
    const heldBack = new HeldBackWatch(relay, logger, this.opts.onHeldBack);
    try {
      while (stillHeld()) {
        if (this.notified) owedMs = OWED_FIRST_MS;
        this.notified = false;
        try {
          const n = await relay.step(stillHeld);
          this.opts.onPublished?.(n);
          if (n > 0 && n < relay.batch) await sleep(this.opts.gatherMs ?? GATHER_MS);
          if (n > 0) continue;
          await heldBack.look();
        } catch (err) {
          logger.warn({ err }, 'relay step failed; retrying');
          await this.pause(500);
          continue;
        }
        if (owedMs && owedMs < pollMs) {
          await this.pause(owedMs);
          owedMs *= 2;
        } else {
          owedMs = 0;
          await this.pause(pollMs);
        }
      }
    } finally {
      this.opts.onHeldBack?.(0);
      this.opts.onActive?.(false);
    }
  }

  /** Sleeps, or less when woken (a notification, the lock lost, stop()). */
  private pause(ms: number): Promise<void> {
    return this.sleeper.sleep(ms);
  }
}

/**
 * Says what keeps committed events from being published: a transaction of this database left open
 * (an operator's `BEGIN`, a rebuild's index build) holds back every event committed after it began.
 */
class HeldBackWatch {
  private lastLook = 0;
  /** The holder last warned about, so a long one is named once. */
  private warned: number | undefined;

  constructor(
    private readonly relay: Relay,
    private readonly logger: Logger,
    private readonly report: ((seconds: number) => void) | undefined,
  ) {}

  /** Called after a step that found nothing; asks Postgres at most once per HELD_LOOK_MS. */
  async look(): Promise<void> {
    if (Date.now() - this.lastLook < HELD_LOOK_MS) return;
    this.lastLook = Date.now();
    const { waiting, holder } = await this.relay.heldBack();
    this.report?.(waiting && holder ? holder.seconds : 0);
    if (waiting && holder && holder.seconds >= HELD_WARN_S && this.warned !== holder.pid) {
      this.warned = holder.pid;
      this.logger.warn(
        {
          waiting,
          backendPid: holder.pid,
          database: holder.database,
          application: holder.application,
          seconds: Math.round(holder.seconds),
        },
        'relay held back: events committed after a transaction still open wait for it to end (backendPid: its pid in pg_stat_activity)',
      );
    } else if (!waiting && this.warned !== undefined) {
      this.warned = undefined;
      this.logger.info('relay no longer held back');
    }
  }
}
