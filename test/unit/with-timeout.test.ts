// withTimeout decides "Kafka is silent": an answer that is already on the socket when the timer
// fires — because this process was busy, not because the peer was — must win over the timer.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaUnavailable, withTimeout } from '../../infra/kafka/reachability.ts';

let server: net.Server;
let port: number;
/** The server's end of each connection, by the order they arrive. */
const accepted: net.Socket[] = [];

beforeAll(async () => {
  server = net.createServer((s) => accepted.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(() => new Promise((r) => server.close(r)));

/** An answer written to the socket (in the kernel at once) just before this process is busy for `busyMs`. */
async function answerWhileBusy(busyMs: number, timeoutMs: number): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  while (accepted.length === 0) await new Promise((r) => setImmediate(r));
  const peer = accepted.shift()!;
  try {
    const answer = new Promise<string>((r) => socket.once('data', (d) => r(d.toString())));
    const timed = withTimeout(answer, timeoutMs);
    peer.write('pong');
    const until = Date.now() + busyMs;
    while (Date.now() < until); // the event loop blocked past the deadline
    return await timed;
  } finally {
    socket.destroy();
    peer.destroy();
  }
}

describe('withTimeout', () => {
  it('resolves with an answer that arrived while the event loop was blocked past the deadline', async () => {
    expect(await answerWhileBusy(200, 20)).toBe('pong');
  });

  it('rejects with KafkaUnavailable when nothing answers in time', async () => {
    const t0 = Date.now();
    await expect(withTimeout(new Promise(() => undefined), 50)).rejects.toBeInstanceOf(KafkaUnavailable);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
  });

  it('passes a rejection through as it is', async () => {
    const boom = new Error('refused');
    await expect(withTimeout(Promise.reject(boom), 1000)).rejects.toBe(boom);
  });
});
