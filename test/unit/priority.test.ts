// A background process lowers every thread it has, and what it starts afterwards (an encode's
// ffmpeg, the thread pool) runs as low; it never raises a priority it was given lower still.
import { execFileSync } from 'node:child_process';
import { getPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const priority = fileURLToPath(new URL('../../infra/priority.ts', import.meta.url));
/** The niceness this test runs at (a CI runner may start it lowered already); `nice -n` adds to it. */
const base = getPriority();

/** Runs yieldCpu in a fresh process started at `startNice`; the niceness of its threads and of a child it starts after. */
function run(nice: number, startNice = 0): { failed: string | null; threads: number[]; child: number } {
  const script = `
    import { readdirSync } from 'node:fs';
    import { execFileSync } from 'node:child_process';
    import { getPriority } from 'node:os';
    import { yieldCpu } from ${JSON.stringify(priority)};
    const failed = yieldCpu(${nice}) ?? null;
    await import('node:crypto').then((c) => new Promise((r) => c.pbkdf2('x', 'y', 1, 8, 'sha256', r))); // starts the thread pool
    const threads = readdirSync('/proc/self/task').map((tid) => getPriority(Number(tid)));
    const child = Number(execFileSync('nice').toString()); // nice with no command prints its own niceness
    console.log(JSON.stringify({ failed, threads, child }));`;
  const out = execFileSync('nice', ['-n', String(startNice), process.execPath, '--import', 'tsx', '--input-type=module', '-e', script]);
  return JSON.parse(out.toString()) as { failed: string | null; threads: number[]; child: number };
}

it.runIf(process.platform === 'linux')('lowers every thread and what it starts later to the niceness asked', () => {
  const r = run(10);
  expect(r.failed).toBeNull();
  expect(r.threads.length).toBeGreaterThan(4); // V8's helpers and the thread pool, not the main thread alone
  expect(new Set(r.threads)).toEqual(new Set([Math.max(10, base)]));
  expect(r.child).toBe(Math.max(10, base));
});

it.runIf(process.platform === 'linux')('0 leaves the priority as it was; a lower one given already is kept', () => {
  const none = run(0);
  expect(new Set(none.threads)).toEqual(new Set([base]));
  expect(none.child).toBe(base);
  const lower = run(10, 15);
  expect(lower.failed).toBeNull();
  expect(new Set(lower.threads)).toEqual(new Set([Math.min(19, base + 15)]));
  expect(lower.child).toBe(Math.min(19, base + 15));
});
