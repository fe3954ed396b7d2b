// Runs encode jobs. A job reaches a worker two ways: its EncodeRequested arrives on this worker's
// partitions of `encodes` (the consumer group spreads them), or the sweep finds a job nobody has
// written to for a lease period (its worker died, or was busy). Either way the worker claims the job
// by appending EncodeStepStarted at the version it loaded: if another worker got there first the
// append fails and this one lets go. A job taken over resumes at the first step whose outputs are
// not all there, after removing everything else from the job's folder.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isTerminal, planOf, type Step } from '../../domain/encodes/job.ts';
import type { BlobStore } from '../../infra/blobs/blob-store.ts';
import type { Config } from '../../infra/config.ts';
import type { Db } from '../../projections/database.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import type { Logger } from '../../infra/logger.ts';
import { MediaCommandFailed, onPath } from '../../infra/media/ffmpeg.ts';
import { JobLost, JobSession } from './job-session.ts';
import type { WorkerMetrics } from './metrics.ts';
import { STEPS, stillThere, type StepContext, type StepInfo } from './steps.ts';

/** Jobs kept in mind while busy; beyond this many the sweep finds them. */
const MAX_WAITING = 1000;

export interface WorkerDeps {
  store: EventStore;
  db: Db;
  blobs: BlobStore;
  config: Config;
  logger: Logger;
  metrics?: WorkerMetrics;
}

export class Worker {
  readonly id = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly running = new Map<string, { done: Promise<void>; abort: AbortController }>();
  /** Jobs offered while this worker had no room, in the order they came. */
  private readonly waiting = new Set<string>();
  private readonly encoder = onPath('kvazaar') ? 'kvazaar' : 'x265';
  private stopped = false;

  constructor(private readonly deps: WorkerDeps) {}

  get busy(): number {
    return this.running.size;
  }

  /**
   * Starts the job if this worker has room; false when it has not. A job turned away is kept in
   * mind and started the moment a run ends, rather than left to a sweep that waits for it to age.
   */
  offer(jobId: string): boolean {
    if (this.stopped || this.running.has(jobId)) return true;
    if (this.running.size >= this.deps.config.workerConcurrency) {
      if (this.waiting.size < MAX_WAITING) this.waiting.add(jobId);
      return false;
    }
    this.waiting.delete(jobId);
    const abort = new AbortController();
    const done = this.run(jobId, abort.signal)
      .catch((err) => this.deps.logger.error({ jobId, err }, 'job run failed'))
      .finally(() => {
        this.running.delete(jobId);
        this.offerWaiting();
      });
    this.running.set(jobId, { done, abort });
    return true;
  }

  /** The jobs turned away, oldest first, while there is room (one already taken elsewhere is left at once by run). */
  private offerWaiting(): void {
    for (const jobId of this.waiting) {
      if (this.stopped || this.running.size >= this.deps.config.workerConcurrency) return;
      this.offer(jobId);
    }
  }

  /** Offers jobs that are queued with nobody on them, or whose worker has gone quiet. */
  async sweep(): Promise<void> {
    const room = this.deps.config.workerConcurrency - this.running.size;
    if (this.stopped || room <= 0) return;
    const now = Date.now();
    const lease = this.deps.config.workerLeaseMs;
    const stale = await this.deps.db
      .selectFrom('encode_jobs')
      .select('job_id')
      .where((eb) =>
        eb.or([
          eb.and([eb('status', '=', 'queued'), eb('updated_at_ms', '<', now - Math.min(lease, 2000))]),
          eb.and([eb('status', '=', 'running'), eb('updated_at_ms', '<', now - lease)]),
        ]),
      )
      .orderBy('updated_at_ms')
      .limit(room + this.running.size)
      .execute();
    for (const { job_id } of stale) if (!this.running.has(job_id) && !this.offer(job_id)) break;
  }

  /** Stops every job at once (their ffmpeg killed, this run's files removed); others take them over. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const r of this.running.values()) r.abort.abort();
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  private async run(jobId: string, signal: AbortSignal): Promise<void> {
    const { store, blobs, config, logger, metrics } = this.deps;
    const session = await JobSession.load(store, jobId);
    const job = session.state;
    if (job.status === 'none' || isTerminal(job)) return;
    // Someone is on it and alive: leave it.
    if (job.status === 'running' && Date.now() - job.lastEventAt < config.workerLeaseMs) return;

    const dir = blobs.jobDir(jobId);
    const part = `.part-${this.id}`;
    const plan = planOf(job);
    const done: Partial<Record<Step, StepInfo>> = {};
    // Resume after the completed steps whose outputs are all still there.
    let from = 0;
    for (const step of plan) {
      const recorded = job.completed[step];
      if (recorded === undefined) break;
      const info = JSON.parse(recorded) as StepInfo;
      if (!(await stillThere({ dir, blobs }, info))) break;
      done[step] = info;
      from++;
    }
    const kept = new Set(Object.values(done).flatMap((i) => Object.keys(i.files)));
    const input = blobs.pathOf(job.sha256);
    let current: Step = plan[from] ?? 'cleanup';

    const heartbeatMs = Math.max(200, Math.floor(config.workerLeaseMs / 3));
    let lastPercent = 0;
    let lastSent = 0;
    const lost = new AbortController();
    const stopAll = AbortSignal.any([signal, lost.signal]);
    const send = (percent: number) => {
      lastSent = Date.now();
      void session.apply({ type: 'Progress', step: current, percent }).catch((err) => {
        if (err instanceof JobLost) lost.abort(err);
        else logger.warn({ jobId, err }, 'progress not recorded');
      });
    };
    const progress = (percent: number) => {
      lastPercent = percent;
      if (Date.now() - lastSent >= config.encodeProgressIntervalMs) send(percent);
    };
    // Progress is also the heartbeat: a quiet step still shows it is alive.
    const beat = setInterval(() => Date.now() - lastSent >= heartbeatMs && send(lastPercent), heartbeatMs);

    const fresh = job.status === 'queued';
    let stepStarted = 0;
    try {
      if (from === 0 && Object.keys(job.completed).length === 0 && job.step === null) {
        logger.info({ jobId, worker: this.id }, 'job started');
      } else {
        metrics?.takeovers.inc();
        logger.info({ jobId, worker: this.id, from: current, previous: job.worker }, 'job taken over');
      }
      await this.removeAllBut(dir, kept);
      await mkdir(dir, { recursive: true });
      // A step's completion is written with the next step's start (and the last with the job's).
      let completed: Parameters<JobSession['apply']>[0][] = [];
      for (const step of plan.slice(from)) {
        current = step;
        lastPercent = 0;
        await session.applyAll([...completed, { type: 'StartStep', step, worker: this.id }]);
        completed = [];
        lastSent = stepStarted = Date.now();
        // The job's last event was its request: how long it waited for a worker.
        if (fresh && step === plan[0]) metrics?.queueWait.observe((stepStarted - job.lastEventAt) / 1000);
        const ctx: StepContext = { job: session.state, dir, input, blobs, encoder: this.encoder, part, signal: stopAll, progress, done };
        const info = await STEPS[step](ctx);
        if (stopAll.aborted) throw stopAll.reason ?? new JobLost('stopped');
        done[step] = info;
        completed = [{ type: 'CompleteStep', step, info: JSON.stringify(info) }];
        metrics?.steps.observe({ step, outcome: 'completed' }, (Date.now() - stepStarted) / 1000);
        stepStarted = 0;
      }
      const output = done.mux?.output;
      if (!output) throw new Error('no output recorded by the mux step');
      await session.applyAll([...completed, { type: 'Complete', outputSha256: output.sha256, size: output.size }]);
      metrics?.jobs.inc({ outcome: 'completed' });
      logger.info({ jobId, worker: this.id, output: output.sha256 }, 'job completed');
    } catch (err) {
      const reason = lost.signal.reason ?? err;
      const letGo = reason instanceof JobLost || signal.aborted;
      if (stepStarted) metrics?.steps.observe({ step: current, outcome: letGo ? 'let_go' : 'failed' }, (Date.now() - stepStarted) / 1000);
      metrics?.jobs.inc({ outcome: letGo ? 'let_go' : 'failed' });
      if (letGo) {
        // Another worker has the job (or this one is stopping): only this run's files go.
        await this.removeParts(dir, part);
        logger.warn({ jobId, worker: this.id, err: reason }, 'job let go');
        return;
      }
      const stderrTail = err instanceof MediaCommandFailed ? err.stderrTail : '';
      const message = err instanceof Error ? err.message : String(err);
      await session.apply({ type: 'Fail', step: current, reason: `${current}: ${message}`, stderrTail }).catch((e) => {
        if (!(e instanceof JobLost)) throw e;
      });
      await blobs.removeDir(dir);
      logger.warn({ jobId, step: current, err }, 'job failed');
    } finally {
      clearInterval(beat);
    }
  }

  private async removeAllBut(dir: string, kept: Set<string>): Promise<void> {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!kept.has(name)) await rm(join(dir, name), { recursive: true, force: true });
    }
  }

  private async removeParts(dir: string, part: string): Promise<void> {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (name.includes(part)) await rm(join(dir, name), { force: true });
    }
  }
}
