// Replaying a broadcast: a historical range at its original pacing times `speed`, several replays
// and live subscriptions on one socket.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LiveClient, System, waitFor } from '../support/system.ts';

let sys: System;
let key: string;
const T0 = Date.UTC(2026, 0, 5, 20, 0, 0);
// Six captions one second apart, then one far later (outside the replayed range).
const broadcast = [0, 1, 2, 3, 4, 5].map((i) => ({ seq: i + 1, text: `line ${i + 1}`, start: T0 + i * 1000, end: T0 + i * 1000 + 900 }));

beforeAll(async () => {
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('projector'), sys.start('fanout')]);
  key = await sys.stationKey('replay-station');
  await sys.postJson('rp.news', key, [...broadcast, { seq: 7, text: 'much later', start: T0 + 3_600_000, end: T0 + 3_601_000 }]);
  await sys.postJson(
    'rp.other',
    key,
    broadcast.map((b) => ({ ...b, text: `other ${b.seq}` })),
  );
  await waitFor('history', async () => (await sys.fragments('rp.news')).length === 7 && (await sys.fragments('rp.other')).length === 6);
});
afterAll(() => sys?.stop());

it('replays a range in order at its original spacing divided by speed', async () => {
  const c = await LiveClient.connect(sys.live);
  const arrivals: number[] = [];
  c.ws.on('message', (m) => JSON.parse(m.toString()).type === 'caption' && arrivals.push(performance.now()));
  c.ws.send(
    JSON.stringify({ op: 'replay', channel: 'rp.news', from: T0, to: new Date(T0 + 6000).toISOString(), speed: 10, id: 'evening' }),
  );
  const end = await c.waitFor('replay_end');
  expect(end).toEqual({ type: 'replay_end', replay: 'evening', channel: 'rp.news', sent: 6, stopped: false });
  const got = c.captions('rp.news');
  expect(got.map((m) => m.text)).toEqual(broadcast.map((b) => b.text));
  expect(got[0]).toMatchObject({
    type: 'caption',
    replay: 'evening',
    originalTime: T0,
    start: T0,
    station: 'replay-station',
    position: expect.stringMatching(/^\d+:\d+$/),
  });
  // 1 s apart on air is 100 ms apart at speed 10. Each caption keeps to that schedule, give or take
  // timer jitter on a busy machine (a late one does not push the others later): the sixth 500 ms
  // after the first, within 250, which neither sending at once (a few ms) nor speed 1 (5 s) meets.
  // Measured from the first arrival, a first caption held up shortens the span (a run saw 398 ms).
  const since = arrivals.map((t) => t - arrivals[0]!);
  since.forEach((t, i) => expect(Math.abs(t - i * 100), `caption ${i + 1} at ${t.toFixed(0)} ms`).toBeLessThan(250));
  c.close();
});

it('runs several replays and a live subscription on one socket, and stops a replay on request', async () => {
  const c = await LiveClient.connect(sys.live);
  c.subscribe('rp.live');
  await c.waitFor('subscribed', 'rp.live');
  c.ws.send(JSON.stringify({ op: 'replay', channel: 'rp.news', from: T0, to: T0 + 6000, speed: 20, id: 'a' }));
  c.ws.send(JSON.stringify({ op: 'replay', channel: 'rp.other', from: T0, to: T0 + 6000, speed: 20, id: 'b' }));
  c.ws.send(JSON.stringify({ op: 'replay', channel: 'rp.news', from: T0, to: T0 + 7_200_000, speed: 1, id: 'slow' }));
  await sys.postJson('rp.live', key, [{ seq: 1, text: 'live now', start: Date.now(), end: Date.now() + 500 }]);
  await waitFor('both fast replays to end', () => c.messages.filter((m) => m.type === 'replay_end').length === 2, 15_000);
  c.ws.send(JSON.stringify({ op: 'stop_replay', id: 'slow' }));
  const ends = await waitFor('the slow one stopped', () => {
    const e = c.messages.filter((m) => m.type === 'replay_end');
    return e.length === 3 && e;
  });
  expect(ends.find((e: any) => e.replay === 'slow')).toMatchObject({ stopped: true });
  expect(
    c
      .captions()
      .filter((m) => m.replay === 'a')
      .map((m) => m.text),
  ).toEqual(broadcast.map((b) => b.text));
  expect(
    c
      .captions()
      .filter((m) => m.replay === 'b')
      .map((m) => m.text),
  ).toEqual(broadcast.map((b) => `other ${b.seq}`));
  expect(c.captions('rp.live').map((m) => m.text)).toEqual(['live now']);
  expect(c.captions('rp.live')[0].replay).toBeUndefined();
  c.close();
});

it('refuses bad replay requests with an error and keeps the socket', async () => {
  const c = await LiveClient.connect(sys.live);
  const bad = [
    { op: 'replay', channel: 'rp.news', from: T0, to: T0 + 1000, speed: 0 },
    { op: 'replay', channel: 'rp.news', from: T0 + 1000, to: T0 },
    { op: 'replay', channel: 'rp.news', from: 'yesterday', to: T0 },
    { op: 'replay', channel: 'Bad Channel', from: T0, to: T0 + 1000 },
    { op: 'stop_replay', id: 'nothing-running' },
  ];
  for (const b of bad) c.ws.send(JSON.stringify(b));
  await waitFor('5 errors', () => c.messages.filter((m) => m.type === 'error').length === 5);
  expect(c.messages.map((m) => m.code)).toEqual(['bad_request', 'bad_request', 'bad_request', 'invalid_channel', 'bad_request']);
  expect(c.messages[0].message).toMatch(/speed/);
  c.ws.send(JSON.stringify({ op: 'replay', channel: 'rp.news', from: T0, to: T0 + 2000, speed: 100 }));
  expect(await c.waitFor('replay_end')).toMatchObject({ sent: 2 });
  c.close();
});
