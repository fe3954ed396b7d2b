// Keeps a set of processes running, as `npm start` needs: a process that dies is started again
// after a pause that doubles with each quick death (and starts over once it has run a while),
// and the others go on meanwhile. Only stop() ends them all.
import { spawn, type ChildProcess } from 'node:child_process';

export interface ProcessSpec {
  name: string;
  /** The command and its arguments. */
  command: string;
  args: string[];
}

export interface SupervisorOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Where the supervisor says what it does (stderr by default). */
  say?: (line: string) => void;
  /** First pause before a restart; it doubles with each death that comes soon after a start. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** A process that ran this long before dying is restarted after the first pause again. */
  healthyAfterMs?: number;
  /** How long stop() waits for a process after SIGTERM before SIGKILL. */
  stopGraceMs?: number;
}

interface Supervised {
  spec: ProcessSpec;
  child: ChildProcess | undefined;
  startedAt: number;
  quickDeaths: number;
  restart: NodeJS.Timeout | undefined;
}

export class Supervisor {
  private readonly procs: Supervised[];
  private stopping: Promise<void> | undefined;
  private readonly say: (line: string) => void;

  constructor(
    specs: ProcessSpec[],
    private readonly opts: SupervisorOptions,
  ) {
    this.procs = specs.map((spec) => ({ spec, child: undefined, startedAt: 0, quickDeaths: 0, restart: undefined }));
    this.say = opts.say ?? ((line) => console.error(line));
  }

  start(): void {
    for (const p of this.procs) this.launch(p);
  }

  /** The pids of the processes running now, by name. */
  pids(): Record<string, number | undefined> {
    return Object.fromEntries(
      this.procs.map((p) => [p.spec.name, p.child?.exitCode === null && p.child.signalCode === null ? p.child.pid : undefined]),
    );
  }

  private launch(p: Supervised): void {
    p.restart = undefined;
    const child = spawn(p.spec.command, p.spec.args, { cwd: this.opts.cwd, env: this.opts.env, stdio: ['ignore', 'inherit', 'inherit'] });
    p.child = child;
    p.startedAt = Date.now();
    this.say(`castlog: ${p.spec.name} started (pid ${child.pid})`);
    child.once('error', (err) => this.say(`castlog: ${p.spec.name} could not be started: ${err.message}`));
    child.once('exit', (code, signal) => this.exited(p, code, signal));
  }

  private exited(p: Supervised, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping) return;
    const ranMs = Date.now() - p.startedAt;
    p.quickDeaths = ranMs >= (this.opts.healthyAfterMs ?? 30_000) ? 0 : p.quickDeaths + 1;
    const delayMs = Math.min((this.opts.initialDelayMs ?? 1000) * 2 ** Math.max(0, p.quickDeaths - 1), this.opts.maxDelayMs ?? 30_000);
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    this.say(`castlog: ${p.spec.name} ${how} after ${(ranMs / 1000).toFixed(1)} s; next attempt in ${(delayMs / 1000).toFixed(1)} s`);
    p.restart = setTimeout(() => this.launch(p), delayMs);
  }

  /** Ends every process (SIGTERM, then SIGKILL after the grace period) and restarts none. */
  stop(): Promise<void> {
    this.stopping ??= Promise.all(
      this.procs.map(async (p) => {
        clearTimeout(p.restart);
        const child = p.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const kill = setTimeout(() => child.kill('SIGKILL'), this.opts.stopGraceMs ?? 10_000);
        await exited;
        clearTimeout(kill);
      }),
    ).then(() => undefined);
    return this.stopping;
  }
}
