// The local stack's Kafka and a port already taken: a working broker there is shared (a second
// checkout's `npm test` beside a running `npm start`); one that listens but no longer works (a
// stack stopped a moment ago, still shutting down) is waited out and ours started, instead of a
// whole test run sharing a broker that is gone a second later; anything else is refused by name.
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { brokersListed, startLocalKafka, type LocalKafka } from '../../infra/stack/kafka-local.ts';
import { STATE_DIR } from '../../infra/stack/ports.ts';
import { freePortRun } from '../support/system.ts';

const started: LocalKafka[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const k of started.splice(0)) await k.stop('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Ports for a node of our own (its broker on p, its controller on p + 1), its data removed after. */
async function freePortPair(): Promise<number> {
  const p = await freePortRun(2);
  dirs.push(join(STATE_DIR, `kafka-${p}`));
  return p;
}

/** A listener that takes connections and hangs up on them at once: on the port, but no Kafka. */
async function notKafkaOn(port: number): Promise<{ close: () => Promise<void> }> {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('the local Kafka on a port already taken', () => {
  it('shares a working broker as it is', async () => {
    const shared = (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',')[0]!;
    const [host, port] = shared.split(':');
    if (host !== '127.0.0.1') return; // the suite's Kafka is elsewhere: nothing local to share
    const k = await startLocalKafka(Number(port));
    expect(k.nodes).toEqual([]);
    expect(k.process).toBeUndefined();
  });

  it('waits out a listener that is not a working broker, then starts its own', async () => {
    const port = await freePortPair();
    const squatter = await notKafkaOn(port);
    const leaves = new Promise<void>((resolve) => setTimeout(() => void squatter.close().then(resolve), 3000));
    const k = await startLocalKafka(port);
    started.push(k);
    await leaves;
    expect(k.nodes).toHaveLength(1);
    expect(await brokersListed(`127.0.0.1:${port}`)).toBe(1);
  }, 120_000);

  it('starts its own in place of a broker shutting down', async () => {
    const port = await freePortPair();
    const first = await startLocalKafka(port);
    started.push(first);
    expect(first.nodes).toHaveLength(1);
    // As a stack's Ctrl-C does, and the next start right after.
    first.process!.kill('SIGTERM');
    const next = await startLocalKafka(port);
    started.push(next);
    expect(next.nodes, 'a broker of its own, not the one going away').toHaveLength(1);
    expect(await brokersListed(`127.0.0.1:${port}`)).toBe(1);
  }, 180_000);

  it('refuses, naming the port, what stays on it without being Kafka', async () => {
    const port = await freePortPair();
    const squatter = await notKafkaOn(port);
    try {
      await expect(startLocalKafka(port, 1, 2000)).rejects.toThrow(`port ${port} is taken by something that is not a working Kafka broker`);
    } finally {
      await squatter.close();
    }
  }, 60_000);
});
