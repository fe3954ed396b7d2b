// Waiting and trying again, written once: a sleep, and a retry loop with backoff that says why it
// tries again and stops when told to.

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A sleep that `wake()` ends early (a loop waiting for new work, or for its stop). */
export function wakeableSleep(): { sleep: (ms: number) => Promise<void>; wake: () => void } {
  let wake: (() => void) | undefined;
  return {
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => ((wake = undefined), resolve()), ms);
        wake = () => (clearTimeout(t), (wake = undefined), resolve());
      }),
    wake: () => wake?.(),
  };
}

export interface RetryOptions {
  /** Attempts in all (Infinity: until it succeeds or `stopped` says so). */
  attempts?: number;
  /** Pause after the first failure. */
  delayMs?: number;
  /** Each pause is this many times the last, up to maxDelayMs. */
  factor?: number;
  maxDelayMs?: number;
  /** Told of each failure that will be tried again. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** Checked before each attempt: true ends the loop, and `retry` resolves undefined. */
  stopped?: () => boolean;
}

/**
 * Runs `fn` until it succeeds, pausing between attempts; throws the last error once `attempts`
 * are spent. With `stopped`, it resolves undefined when told to stop.
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  opts: RetryOptions & { stopped: () => boolean },
): Promise<T | undefined>;
export async function retry<T>(fn: (attempt: number) => Promise<T>, opts?: RetryOptions): Promise<T>;
export async function retry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions = {}): Promise<T | undefined> {
  const { attempts = Infinity, delayMs = 500, factor = 1, maxDelayMs = delayMs, onRetry, stopped } = opts;
  let delay = delayMs;
  for (let attempt = 1; ; attempt++) {
    if (stopped?.()) return undefined;
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || stopped?.()) throw err;
      onRetry?.(err, attempt, delay);
      await sleep(delay);
      delay = Math.min(delay * factor, maxDelayMs);
    }
  }
}

/**
 * An `onRetry` for a wait that may last minutes (a broker away, a database restarting): each new
 * reason is said at once, and a reason that repeats only every `everyMs` rather than twice a
 * second; `unsaid` is how many failed tries went unsaid since the last one said.
 */
export function sayingWhy(
  say: (err: unknown, attempt: number, unsaid: number) => void,
  everyMs = 10_000,
  now: () => number = Date.now,
): (err: unknown, attempt: number) => void {
  let last: { reason: string; at: number } | undefined;
  let unsaid = 0;
  return (err, attempt) => {
    const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    const t = now();
    if (last && last.reason === reason && t - last.at < everyMs) return void unsaid++;
    say(err, attempt, unsaid);
    last = { reason, at: t };
    unsaid = 0;
  };
}
