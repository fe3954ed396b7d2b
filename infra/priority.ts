// Background work (projections, the relay, encodes) may yield the CPU to the processes that answer
// requests when they share a machine: a stream decision then waits less behind a projector's batch
// or an encode. The price is the background processes' own reactions (their /readyz in an outage)
// when the machine is saturated, so it is asked for (BACKGROUND_NICE), not the default. With cores
// to spare it changes nothing; niceness only orders who runs first.
import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * Lowers this process to `nice` (1–19; 0 leaves it). Linux keeps niceness per thread, so every
 * thread running now is lowered (V8's and libuv's helpers too); threads and child processes started
 * later inherit it. Never raises a priority (that needs privileges). Answers what it could not do.
 */
export function yieldCpu(nice: number): string | undefined {
  if (nice <= 0) return undefined;
  let threads = [0];
  try {
    threads = readdirSync('/proc/self/task').map(Number);
  } catch {
    // Not Linux: the process as the platform defines it.
  }
  const failed: string[] = [];
  for (const tid of threads) {
    try {
      if (getPriority(tid) < nice) setPriority(tid, nice);
    } catch (err) {
      // A thread that ended meanwhile has nothing to lower.
      if ((err as { info?: { code?: string } }).info?.code !== 'ESRCH') failed.push(`${tid}: ${(err as Error).message}`);
    }
  }
  return failed.length ? `could not lower the priority of ${failed.join(', ')}` : undefined;
}
