// When a delivery that failed is tried again: after a pause that doubles with each failure of its
// series (from `baseMs`, at most `maxMs`), until its window closes — the last try is at the close.
// A series starts when the delivery is created and again when its owner asks to redeliver it. Pure.

export interface RetryPolicy {
  baseMs: number;
  maxMs: number;
  /** How long a series lasts. */
  windowMs: number;
}

/** The end of a series: the redeliver's own end, else the creation's plus the window. */
export const retryUntil = (policy: RetryPolicy, createdAtMs: number, retryUntilMs: number | null): number =>
  retryUntilMs ?? createdAtMs + policy.windowMs;

/** The pause after the `failures`-th failed attempt of a series (1 for the first). */
export function backoffMs(policy: RetryPolicy, failures: number): number {
  const doublings = Math.max(0, Math.min(failures - 1, 40)); // 2^40 × base is past any cap
  return Math.min(policy.maxMs, policy.baseMs * 2 ** doublings);
}

/** When to try again after the `failures`-th failure at `now`, or undefined when the series is over. */
export function nextAttemptAt(policy: RetryPolicy, failures: number, now: number, until: number): number | undefined {
  if (now >= until) return undefined;
  return Math.min(now + backoffMs(policy, failures), until);
}
