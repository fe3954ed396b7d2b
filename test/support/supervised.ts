// `npm start` as an operator runs it (apps/start.ts: the supervisor and every castlog process),
// for tests of what happens to the whole system when something fails underneath it.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { appArgs } from '../../apps/node-args.ts';
import { waitFor } from './system.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export class SupervisedStack {
  private readonly lines: string[] = [];

  private constructor(private readonly child: ChildProcess) {
    const keep = (d: Buffer) => this.lines.push(...d.toString().split('\n').filter(Boolean));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
  }

  /** Starts the supervisor with this environment (ports, database, brokers, topic prefix). */
  static start(env: NodeJS.ProcessEnv): SupervisedStack {
    const child = spawn(process.execPath, ['--import', 'tsx', 'apps/start.ts'], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new SupervisedStack(child);
  }

  /** One castlog process outside the supervisor (a second copy, say), with the same environment. */
  static startProcess(name: string, env: NodeJS.ProcessEnv): ChildProcess {
    return spawn(process.execPath, appArgs(name), {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }

  static async stopProcess(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }

  /** Everything the supervisor and its processes printed, a line each. */
  get output(): string[] {
    return this.lines;
  }

  /** What the supervisor itself said (its lines start with "castlog: "). */
  get said(): string[] {
    return this.lines.filter((l) => l.startsWith('castlog: '));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The pid the supervisor last started a process with, as it says on stderr. */
  pidOf(name: string): number | undefined {
    const started = this.said.map((l) => new RegExp(`^castlog: ${name} started \\(pid (\\d+)\\)`).exec(l)).filter(Boolean);
    const last = started.at(-1);
    return last ? Number(last[1]) : undefined;
  }

  async waitForLine(what: string, re: RegExp, timeoutMs = 30_000): Promise<string> {
    return waitFor(what, () => this.lines.find((l) => re.test(l)), timeoutMs, 50);
  }

  /** SIGTERM, as Ctrl-C: resolves with the exit code once the supervisor (and so everything) ended. */
  async stop(): Promise<number | null> {
    if (!this.running) return this.child.exitCode;
    const exited = new Promise<number | null>((r) => this.child.once('exit', (code) => r(code)));
    this.child.kill('SIGTERM');
    return exited;
  }

  /** For cleanup after a failure: ends, by pid, the supervisor and the processes it started last. */
  killAll(): void {
    if (this.running) this.child.kill('SIGKILL');
    const names = new Set(this.said.map((l) => /^castlog: (\w+) started/.exec(l)?.[1]).filter((n): n is string => !!n));
    for (const name of names) {
      const pid = this.pidOf(name);
      try {
        // Only if that pid is still the process we started (pids are reused).
        if (pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`apps/${name}/main.ts`)) process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
