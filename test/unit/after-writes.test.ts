// afterWrites, and the write slices' `written()` built on it, with a real uWebSockets.js server and
// clients in this process: once it resolves, what was published has been written to the client, not
// still waiting in uWS (the fanout's consumer fetches again only then, so the next fetch brings what
// arrived while the writes went out).
import { afterAll, beforeAll, expect, it } from 'vitest';
import uWS from 'uWebSockets.js';
import WebSocket from 'ws';
import { WriteSlices, afterWrites } from '../../apps/fanout/slices.ts';

let app: uWS.TemplatedApp;
let listening: uWS.us_listen_socket;
let port = 0;
const clients: WebSocket[] = [];

beforeAll(async () => {
  app = uWS.App().ws('/*', { open: (ws) => void ws.subscribe('news') });
  listening = await new Promise<uWS.us_listen_socket>((done, fail) =>
    app.listen('127.0.0.1', 0, (s) => (s ? done(s) : fail(new Error('uWS did not listen')))),
  );
  port = uWS.us_socket_local_port(listening);
});
afterAll(() => {
  for (const c of clients) c.terminate();
  uWS.us_listen_socket_close(listening);
});

/** A client subscribed to 'news' (once the server counts it), recording what it reads. */
async function subscriber(): Promise<string[]> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  clients.push(ws);
  const got: string[] = [];
  ws.on('message', (m) => got.push(String(m)));
  await new Promise((done, fail) => ws.once('open', done).once('error', fail));
  while (app.numSubscribers('news') < clients.length) await new Promise((r) => setTimeout(r, 5));
  return got;
}

it('resolves after what this turn published has reached a client', async () => {
  const got = await subscriber();
  for (let i = 1; i <= 50; i++) {
    app.publish('news', `caption ${i}`);
    await afterWrites();
    // Read by the client already: nothing is left for a later turn to write.
    expect(got.at(-1)).toBe(`caption ${i}`);
  }
  expect(got).toHaveLength(50);
});

it('covers several publishes to many sockets in one turn', async () => {
  const all = [await subscriber(), ...(await Promise.all(Array.from({ length: 20 }, subscriber)))];
  const before = all.map((g) => g.length);
  for (let i = 0; i < 10; i++) app.publish('news', `burst ${i}`);
  await afterWrites();
  for (const [k, g] of all.entries()) expect(g.slice(before[k])).toEqual(Array.from({ length: 10 }, (_, i) => `burst ${i}`));
});

it('written(): after what was published through one slice, the clients have it; otherwise at once', async () => {
  const all = [await subscriber(), await subscriber()];
  const slices = new WriteSlices({ publish: (topic, message) => void app.publish(topic, message) }, 1);
  const atOnce = () => atOnceFor(slices);
  expect(await atOnce()).toBe(true); // nothing published: nothing to wait for
  for (let i = 0; i < 5; i++) {
    const before = all.map((g) => g.length);
    slices.publish('news', `round ${i}`);
    expect(await atOnce()).toBe(false);
    for (const [k, g] of all.entries()) expect(g.slice(before[k])).toEqual([`round ${i}`]);
    expect(await atOnce()).toBe(true); // asked again: already written
  }
  // In slices, what was published at once (nothing logged, the turn's writes within budget) is
  // waited for as with one; what was logged for the slices' turns is not: the next fetch comes back
  // between two of them.
  const member = { gone: false, join: () => undefined, leave: () => undefined };
  const within = new WriteSlices({ publish: () => {} }, 4);
  within.join(member, 0, 'news');
  within.publish('news', 'x');
  expect(await atOnceFor(within)).toBe(false);
  const logged = new WriteSlices({ publish: () => {} }, 4, setImmediate, 0);
  logged.join(member, 0, 'news');
  logged.publish('news', 'x');
  expect(await atOnceFor(logged)).toBe(true);
});

/** Whether `slices.written()` resolved before a turn of the loop went by. */
async function atOnceFor(slices: WriteSlices): Promise<boolean> {
  let turned = false;
  setImmediate(() => (turned = true));
  await slices.written();
  return !turned;
}
