import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { sleep } from '../retry.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const STATE_DIR = join(ROOT, '.castlog');

export function isPortOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ port, host });
    s.setTimeout(500);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('timeout', () => (s.destroy(), resolve(false)));
    s.once('error', () => resolve(false));
  });
}

/** Waits until `port` is open (`open`) or closed; false when `timeoutMs` passed first. */
async function untilPort(port: number, open: boolean, timeoutMs: number, gaveUp: () => boolean = () => false): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await isPortOpen(port)) === open || gaveUp()) return true;
    await sleep(250);
  }
  return false;
}

export async function waitForPort(port: number, timeoutMs: number, gaveUp: () => boolean = () => false): Promise<void> {
  if (!(await untilPort(port, true, timeoutMs, gaveUp))) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
}

/** Waits until nothing listens on `port` any more; false when it still does after `timeoutMs`. */
export const waitForPortClosed = (port: number, timeoutMs: number): Promise<boolean> => untilPort(port, false, timeoutMs);
