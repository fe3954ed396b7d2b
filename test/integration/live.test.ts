// Browsers watching live: many channels per socket, resume with `since` across a fanout restart
// and from beyond the fanout's memory, slow consumers, bad requests.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveClient, System, fragment, waitFor } from '../support/system.ts';

let sys: System;
let key: string;
const clients: LiveClient[] = [];
const connect = async (url = sys.live) => {
  const c = await LiveClient.connect(url);
  clients.push(c);
  return c;
};
const seqs = (msgs: any[]) => msgs.map((m) => m.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

beforeAll(async () => {
  // A small memory, so "away for days" (older than memory) is easy to reach.
  sys = await System.create({ FANOUT_HISTORY_PER_PARTITION: '20' });
  await Promise.all([sys.start('api'), sys.start('projector'), sys.start('fanout')]);
  key = await sys.stationKey('live-station');
});
afterAll(async () => {
  for (const c of clients) c.close();
  await sys?.stop();
});

describe('live captions', () => {
  it('delivers each subscribed channel on one socket, in order, and nothing else', async () => {
    const c = await connect();
    // Sees what c must not: once it has a caption, the fanout has sent it to every subscriber.
    const watcher = await connect();
    watcher.subscribe('live.a');
    watcher.subscribe('live.c');
    await watcher.waitFor('subscribed', 'live.a');
    await watcher.waitFor('subscribed', 'live.c');
    c.subscribe('live.a');
    c.subscribe('live.b');
    const sa = await c.waitFor('subscribed', 'live.a');
    expect(sa).toMatchObject({ channel: 'live.a', position: expect.stringMatching(/^\d+:-?\d+$/), recovered: false });
    await c.waitFor('subscribed', 'live.b');
    await sys.postJson('live.a', key, [fragment(1, 'a1'), fragment(2, 'a2')]);
    await sys.postJson('live.c', key, [fragment(1, 'c1')]);
    await sys.postJson('live.b', key, [fragment(1, 'b1', { lang: 'fr', mode: 'popon' })]);
    await sys.postJson('live.a', key, [fragment(3, 'a3')]);
    const a = await c.waitForCaptions(3, 'live.a');
    const b = await c.waitForCaptions(1, 'live.b');
    expect(a.map((m) => m.text)).toEqual(['a1', 'a2', 'a3']);
    expect(b[0]).toMatchObject({
      type: 'caption',
      channel: 'live.b',
      station: 'live-station',
      seq: 1,
      text: 'b1',
      lang: 'fr',
      mode: 'popon',
      start: fragment(1).start,
      end: fragment(1).end,
    });
    await watcher.waitForCaptions(1, 'live.c');
    await c.barrier();
    expect(c.captions('live.c')).toEqual([]);

    c.ws.send(JSON.stringify({ op: 'unsubscribe', channel: 'live.a' }));
    await c.waitFor('unsubscribed', 'live.a');
    await sys.postJson('live.a', key, [fragment(4, 'a4')]);
    await sys.postJson('live.b', key, [fragment(2, 'b2')]);
    await c.waitForCaptions(2, 'live.b');
    await watcher.waitForCaptions(4, 'live.a');
    await c.barrier();
    expect(c.captions('live.a')).toHaveLength(3);
  });

  it('delivers a station retry once', async () => {
    const c = await connect();
    c.subscribe('live.retry');
    await c.waitFor('subscribed', 'live.retry');
    await sys.postJson('live.retry', key, [fragment(1), fragment(2)]);
    await sys.postJson('live.retry', key, [fragment(2), fragment(3)]);
    await c.waitForCaptions(3, 'live.retry');
    await sys.postJson('live.retry', key, [fragment(4)]);
    await c.waitForCaptions(4, 'live.retry');
    expect(seqs(c.captions('live.retry'))).toEqual([1, 2, 3, 4]);
  });

  it('answers bad requests with an error and keeps the socket working', async () => {
    const c = await connect();
    c.ws.send('not json');
    c.ws.send(JSON.stringify({ op: 'dance', channel: 'x' }));
    c.subscribe('Not-Valid');
    c.subscribe('live.err', 'yesterday');
    c.subscribe('live.err', '999:5');
    await waitFor('5 errors', () => c.messages.filter((m) => m.type === 'error').length === 5);
    expect(c.messages.map((m) => m.code)).toEqual([
      'bad_request',
      'bad_request',
      'invalid_channel',
      'invalid_position',
      'invalid_position',
    ]);
    c.subscribe('live.err');
    await c.waitFor('subscribed', 'live.err');
    await sys.postJson('live.err', key, [fragment(1)]);
    await c.waitForCaptions(1, 'live.err');
  });
});

describe('resuming with since', () => {
  it('continues exactly across a fanout restart: no gap, no duplicate', async () => {
    const c = await connect();
    c.subscribe('resume.restart');
    await c.waitFor('subscribed', 'resume.restart');
    await sys.postJson(
      'resume.restart',
      key,
      range(1, 5).map((s) => fragment(s)),
    );
    const seen = await c.waitForCaptions(5, 'resume.restart');
    const last = seen.at(-1).position;

    await sys.kill('fanout');
    await waitFor('client to notice', () => c.closed);
    await sys.postJson(
      'resume.restart',
      key,
      range(6, 12).map((s) => fragment(s)),
    );
    await sys.start('fanout');

    const again = await connect();
    again.subscribe('resume.restart', last);
    expect(await again.waitFor('subscribed', 'resume.restart')).toMatchObject({ position: last, recovered: true });
    await again.waitForCaptions(7, 'resume.restart');
    await sys.postJson('resume.restart', key, [fragment(13)]);
    await again.waitForCaptions(8, 'resume.restart');
    expect(seqs(again.captions('resume.restart'))).toEqual(range(6, 13));
  });

  it('replays from the read model when the client was away longer than the fanout remembers', async () => {
    const c = await connect();
    c.subscribe('resume.old');
    await c.waitFor('subscribed', 'resume.old');
    await sys.postJson('resume.old', key, [fragment(1)]);
    const [first] = await c.waitForCaptions(1, 'resume.old');
    c.close();
    // 200 fragments on this channel: ten times what the fanout keeps per partition.
    for (let s = 2; s <= 200; s += 50) {
      const r = await sys.postJson(
        'resume.old',
        key,
        range(s, Math.min(s + 49, 200)).map((q) => fragment(q)),
      );
      expect(r.status).toBe(200);
    }
    await waitFor('projector to catch up', async () => (await sys.fragments('resume.old')).length === 200);

    const back = await connect();
    back.subscribe('resume.old', first.position);
    await back.waitForCaptions(199, 'resume.old');
    await sys.postJson('resume.old', key, [fragment(201)]);
    await back.waitForCaptions(200, 'resume.old');
    expect(seqs(back.captions('resume.old'))).toEqual(range(2, 201));
    const offsets = back.captions('resume.old').map((m) => Number(m.position.split(':')[1]));
    expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
  });
});

describe('slow consumers', () => {
  it('closes a client that stops reading with a code that says to resume, and it can', async () => {
    const other = await System.create({ FANOUT_MAX_BACKPRESSURE: '65536' });
    try {
      await Promise.all([other.start('api'), other.start('fanout')]);
      const k = await other.stationKey();
      const c = await LiveClient.connect(other.live);
      c.subscribe('slow');
      await c.waitFor('subscribed', 'slow');
      // Stop reading: the socket buffers fill, then the server's queue for this client grows.
      (c.ws as any)._socket.pause();
      const text = 'x'.repeat(1900);
      const total = 12_000;
      for (let s = 1; s <= total; s += 500)
        await other.postJson(
          'slow',
          k,
          range(s, s + 499).map((q) => fragment(q, text)),
        );
      (c.ws as any)._socket.resume();
      await waitFor('close', () => c.closed, 30_000);
      expect(c.closed!.code).toBe(4008);
      expect(c.closed!.reason).toMatch(/since/);
      const got = c.captions('slow');
      expect(got.length).toBeLessThan(total);
      expect(seqs(got)).toEqual(range(1, got.length)); // what it got has no hole

      const again = await LiveClient.connect(other.live);
      again.subscribe('slow', got.at(-1).position);
      await again.waitForCaptions(total - got.length, 'slow', 60_000);
      expect(seqs(again.captions('slow'))).toEqual(range(got.length + 1, total));
      again.close();
    } finally {
      await other.stop();
    }
  }, 120_000);
});
