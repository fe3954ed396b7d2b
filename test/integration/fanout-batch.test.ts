// The real fanout process (uWebSockets.js pub/sub) with batch frames: a viewer that asked for them
// and one that did not get the same captions in the same order, a resume after a batch is exact,
// and what reaches the fanout together (one Kafka read) comes in batch frames only to the one that asked.
// This fanout writes its sockets in three slices with no writes to spare in a turn
// (FANOUT_WRITES_PER_TURN=0; the other live tests run the defaults, under which their few viewers are
// written at once), so the same guarantees are checked with what it publishes replayed a slice a turn.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LiveClient, System, waitFor } from '../support/system.ts';

let sys: System;
const clients: LiveClient[] = [];
const CHANNEL = 'batch.news';
const T0 = 1_700_000_000_000;

beforeAll(async () => {
  sys = await System.create();
  await sys.start('fanout', { FANOUT_WRITE_SLICES: '3', FANOUT_WRITES_PER_TURN: '0' });
}, 180_000);
afterAll(async () => {
  for (const c of clients) c.close();
  await sys?.stop();
});

const connect = async () => {
  const c = await LiveClient.connect(sys.live);
  clients.push(c);
  return c;
};
const subscribe = (c: LiveClient, since?: string) =>
  c.ws.send(JSON.stringify({ op: 'subscribe', channel: CHANNEL, batch: true, ...(since ? { since } : {}) }));
/** Captions of the channel as read, batch frames opened. */
const captions = (c: LiveClient) =>
  c.messages.flatMap((m) => (m.type === 'batch' ? m.messages : [m])).filter((m) => m.type === 'caption' && m.channel === CHANNEL);
const seqs = (ms: { seq: number }[]) => ms.map((m) => m.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Appends fragments seq from..to of the channel in one go (they reach the fanout in few reads). */
async function append(from: number, to: number): Promise<void> {
  await sys.log.append(
    range(from, to).map((seq) => ({
      type: 'CaptionFragmentReceived',
      key: CHANNEL,
      source: '/stations/batch-test',
      data: {
        channel: CHANNEL,
        station: 'batch-test',
        seq,
        text: `fragment ${seq}`,
        start: T0 + seq * 1000,
        end: T0 + seq * 1000 + 900,
        mode: 'rollup',
        lang: 'en',
        receivedAt: Date.now(),
      },
    })),
  );
}

it('gives a batch viewer and a plain one the same captions in order; resuming after a batch is exact', async () => {
  const plain = await connect();
  const batched = await connect();
  plain.subscribe(CHANNEL);
  subscribe(batched);
  await plain.waitFor('subscribed', CHANNEL);
  expect(await batched.waitFor('subscribed', CHANNEL)).toMatchObject({ batch: true });

  await append(1, 400);
  await waitFor('400 captions each', () => captions(plain).length >= 400 && captions(batched).length >= 400, 60_000);
  expect(seqs(captions(plain))).toEqual(range(1, 400));
  expect(seqs(captions(batched))).toEqual(range(1, 400));
  expect(captions(batched).map((m) => m.position)).toEqual(captions(plain).map((m) => m.position));
  // One caption per frame for the one that did not ask; batches (of 2 or more) for the one that did.
  expect(plain.messages.some((m) => m.type === 'batch')).toBe(false);
  const batches = batched.messages.filter((m) => m.type === 'batch');
  expect(batches.length).toBeGreaterThan(0);
  for (const b of batches) expect(b.messages.length).toBeGreaterThan(1);

  // Resume after the last caption of the first batch frame: exactly what follows, then live.
  const cut = batches[0].messages.at(-1);
  const resumed = await connect();
  subscribe(resumed, cut.position);
  await append(401, 420);
  await waitFor('the rest', () => captions(resumed).length >= 420 - cut.seq && captions(plain).length >= 420, 60_000);
  expect(seqs(captions(resumed))).toEqual(range(cut.seq + 1, 420));
  expect(seqs(captions(plain))).toEqual(range(1, 420));
  await waitFor('the batch viewer too', () => captions(batched).length >= 420, 30_000);
  expect(seqs(captions(batched))).toEqual(range(1, 420));
}, 180_000);
