// The fanout hub under a random mix of subscribes, resumes, slow readers, batch frames and live
// traffic, on sockets that behave like uWebSockets.js pub/sub (a published message is queued for the
// sockets on its topic at that moment and written at the end of the tick, or before the socket's
// next direct send). Every subscriber's sequence is checked exactly: from each `subscribed` answer
// on, the captions of that channel after its position, in order, with no gap and no duplicate, and
// a subscriber closed with 4008 that resumes from the last position it read misses nothing.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Entry } from '../../apps/fanout/history.ts';
import { captionsFeed } from '../../apps/fanout/feeds.ts';
import { Client, Hub, type CaptionArchive, type Publisher, type Socket } from '../../apps/fanout/hub.ts';
import { CLOSE_SLOW_CONSUMER, captionMessage } from '../../apps/fanout/protocol.ts';
import { formatPosition } from '../../domain/position.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { seededRandom } from '../support/seeded-random.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';

const PARTITIONS = 3;
const CHANNELS = ['news', 'sports', 'weather', 'music', 'kids', 'docs', 'film'];
const MAX_BACKPRESSURE = 6000;

afterEach(() => void vi.useRealTimers());

/** uWS pub/sub as the hub sees it. */
class FakeUws implements Publisher {
  readonly topics = new Map<string, Set<FakeSocket>>();
  readonly sockets = new Set<FakeSocket>();
  publish(topic: string, message: string): void {
    for (const s of this.topics.get(topic) ?? []) s.queued.push(message);
  }
  subscribers(topic: string): number {
    return this.topics.get(topic)?.size ?? 0;
  }
  /** The end of an event-loop iteration: uWS writes what was published. */
  drain(): void {
    for (const s of this.sockets) s.flushQueued();
  }
}

class FakeSocket implements Socket {
  queued: string[] = [];
  /** Written, not yet read by the client. */
  wire: string[] = [];
  /** Read by the client, in order. */
  read: string[] = [];
  buffered = 0;
  closedWith: number | undefined;
  client!: Client;
  constructor(
    private readonly uws: FakeUws,
    private readonly hub: Hub,
  ) {
    uws.sockets.add(this);
  }
  flushQueued(): void {
    for (const m of this.queued) this.write(m);
    this.queued = [];
  }
  private write(m: string): void {
    this.wire.push(m);
    this.buffered += m.length;
  }
  send(message: string): number {
    if (this.closedWith !== undefined) throw new Error('send on a closed socket');
    this.flushQueued(); // uWS drains a socket's published messages before a direct send
    this.write(message);
    return 1;
  }
  bufferedAmount(): number {
    return this.buffered;
  }
  cork(fn: () => void): void {
    fn();
  }
  end(code: number): void {
    if (this.closedWith !== undefined) throw new Error('closed twice');
    this.closedWith = code;
    this.queued = [];
    for (const set of this.uws.topics.values()) set.delete(this);
    this.uws.sockets.delete(this);
    this.hub.disconnect(this.client); // the server's close handler, called by uWS from end()
  }
  /** Topics as the hub joined and left them: each once each way, closed or not (the write slices count on it). */
  readonly joined = new Set<string>();
  subscribe(topic: string): void {
    if (this.closedWith !== undefined) throw new Error(`subscribe to ${topic} on a closed socket`);
    if (this.joined.has(topic)) throw new Error(`joined ${topic} twice`);
    this.joined.add(topic);
    let set = this.uws.topics.get(topic);
    if (!set) this.uws.topics.set(topic, (set = new Set()));
    set.add(this);
  }
  unsubscribe(topic: string): void {
    if (!this.joined.delete(topic)) throw new Error(`left ${topic} without joining it`);
    this.uws.topics.get(topic)?.delete(this);
  }
  /** The client reads up to n messages (all when n is undefined). */
  readSome(n = Infinity): void {
    while (n-- > 0 && this.wire.length) {
      const m = this.wire.shift()!;
      this.buffered -= m.length;
      this.read.push(m);
    }
  }
}

/** The read model, complete (the projector keeps up): every delivered fragment once. */
class Archive implements CaptionArchive {
  readonly rows: Entry[][] = Array.from({ length: PARTITIONS }, () => []);
  readonly applied = Array<number>(PARTITIONS).fill(0);
  async after(channel: string, partition: number, offset: number, limit: number) {
    await Promise.resolve();
    return {
      rows: this.rows[partition]!.filter((r) => r.channel === channel && r.offset > offset).slice(0, limit),
      appliedUpTo: this.applied[partition]!,
    };
  }
}

interface Viewer {
  socket: FakeSocket;
  batch: boolean;
  slow: boolean;
  channels: Set<string>;
  /** Per channel, the positions of every caption read, across the viewer's connections. */
  lastRead: Map<string, string>;
}

type Parsed = { type: string; channel?: string; position?: string; recovered?: boolean; messages?: Parsed[]; batch?: boolean };

/** One run: `steps` random actions, then everything settles and every sequence is checked. */
async function run(seed: number, steps: number): Promise<{ closedSlow: number; batchFrames: number; resumed: number }> {
  const rnd = seededRandom(seed);
  const uws = new FakeUws();
  const archive = new Archive();
  const hub = new Hub({
    partitions: PARTITIONS,
    startOffsets: Array(PARTITIONS).fill(0),
    historyCapacity: 30, // small: resumes reach past it, into the read model
    maxBackpressure: MAX_BACKPRESSURE,
    archive,
    stats: { delivered: () => undefined, slowClosed: () => undefined, fannedOut: () => undefined },
    feed: captionsFeed(),
  });
  hub.publishWith(uws);
  const next = Array<number>(PARTITIONS).fill(0);
  /** Every record of the log: its partition, offset, channel, and whether it is a station's repeat. */
  const log: { partition: number; offset: number; channel: string; repeat: boolean }[] = [];
  const lastSeq = new Map<string, number>();
  const viewers: Viewer[] = [];
  /** Every connection ever opened, with the viewer it belongs to, for the final check. */
  const connections: { socket: FakeSocket; viewer: Viewer }[] = [];
  let closedSlow = 0;
  let resumed = 0;

  const append = (n: number) => {
    const batches = new Map<number, { offset: number; data: CaptionFragmentReceived }[]>();
    for (let k = 0; k < n; k++) {
      const channel = rnd.pick(CHANNELS);
      const last = lastSeq.get(channel) ?? 0;
      const seq = rnd.next() < 0.1 && last > 0 ? last : last + 1; // now and then a station's retry
      lastSeq.set(channel, Math.max(last, seq));
      const partition = partitionFor(channel, PARTITIONS);
      const offset = next[partition]!++;
      const data: CaptionFragmentReceived = {
        channel,
        station: 'studio',
        seq,
        text: `${channel} #${seq}`,
        start: seq * 1000,
        end: seq * 1000 + 500,
        mode: 'rollup',
        lang: 'en',
        receivedAt: Date.now(),
      };
      const repeat = seq <= last;
      log.push({ partition, offset, channel, repeat });
      if (!repeat) archive.rows[partition]!.push({ offset, channel, json: captionMessage(data, formatPosition({ partition, offset })) });
      archive.applied[partition] = offset + 1;
      let b = batches.get(partition);
      if (!b) batches.set(partition, (b = []));
      b.push({ offset, data });
    }
    for (const [partition, records] of batches) hub.onRecords(partition, records, next[partition]);
  };

  const connect = (viewer: Viewer) => {
    const socket = new FakeSocket(uws, hub);
    socket.client = new Client(socket);
    viewer.socket = socket;
    connections.push({ socket, viewer });
  };
  const subscribe = (viewer: Viewer, channel: string, since?: string) => {
    viewer.channels.add(channel);
    hub.subscribe(viewer.socket.client, channel, since, viewer.batch);
  };
  /** A position of the channel's partition to resume from: one it had, or before the first record. */
  const somePosition = (channel: string) => {
    const partition = partitionFor(channel, PARTITIONS);
    const own = log.filter((r) => r.channel === channel && !r.repeat);
    return own.length && rnd.next() < 0.8 ? formatPosition(rnd.pick(own)) : `${partition}:-1`;
  };
  /** What the client read of a socket, caption by caption (batch frames opened), with the `subscribed` answers. */
  const observe = (viewer: Viewer, socket: FakeSocket) => {
    for (const raw of socket.read.splice(0)) {
      const m = JSON.parse(raw) as Parsed;
      if (m.type === 'batch') {
        expect(viewer.batch, 'a batch frame only to a client that asked for them').toBe(true);
        expect(m.messages!.length).toBeGreaterThan(1);
        for (const c of m.messages!) expect(c.channel).toBe(m.channel);
      }
      for (const c of m.type === 'batch' ? m.messages! : [m]) {
        // Where to resume from: the last caption read, or where the subscription started.
        if (c.type === 'caption' || c.type === 'subscribed') viewer.lastRead.set(c.channel!, c.position!);
        events.push({ viewer, socket, m: c });
      }
    }
  };
  const events: { viewer: Viewer; socket: FakeSocket; m: Parsed }[] = [];
  let batchFrames = 0;
  const countBatches = (socket: FakeSocket) => {
    for (const raw of socket.read) if (raw.startsWith('{"type":"batch"')) batchFrames++;
  };
  const readAll = (viewer: Viewer, n?: number) => {
    viewer.socket.readSome(n);
    countBatches(viewer.socket);
    observe(viewer, viewer.socket);
  };
  /** A viewer closed as a slow consumer reconnects and resumes each channel from what it read. */
  const reconnect = (viewer: Viewer) => {
    // The hub left every topic the closed socket was on, so the publisher's counts come down.
    expect([...viewer.socket.joined], 'topics of a closed socket the hub did not leave').toEqual([]);
    readAll(viewer); // what was written before the close frame still arrives
    connect(viewer);
    viewer.slow = false;
    resumed++;
    for (const channel of viewer.channels) {
      const last = viewer.lastRead.get(channel);
      subscribe(viewer, channel, last);
    }
  };

  for (let step = 0; step < steps; step++) {
    const r = rnd.next();
    if (r < 0.35) append(1 + rnd.int(rnd.next() < 0.2 ? 40 : 4));
    else if (r < 0.5 || viewers.length === 0) {
      const viewer: Viewer = {
        socket: undefined!,
        batch: rnd.next() < 0.5,
        slow: rnd.next() < 0.25,
        channels: new Set(),
        lastRead: new Map(),
      };
      viewers.push(viewer);
      connect(viewer);
      for (let k = 1 + rnd.int(3); k > 0; k--) {
        const channel = rnd.pick(CHANNELS);
        subscribe(viewer, channel, rnd.next() < 0.5 ? somePosition(channel) : undefined);
      }
    } else if (r < 0.6) {
      // A viewer resumes one of its channels on the same socket from the last caption it read.
      const viewer = rnd.pick(viewers);
      if (viewer.socket.closedWith === undefined && viewer.channels.size) {
        readAll(viewer);
        const channel = rnd.pick([...viewer.channels]);
        subscribe(viewer, channel, viewer.lastRead.get(channel) ?? somePosition(channel));
      }
    } else if (r < 0.65) {
      const viewer = rnd.pick(viewers);
      viewer.slow = !viewer.slow;
    }
    uws.drain();
    for (const viewer of viewers) {
      if (viewer.socket.closedWith !== undefined) {
        expect(viewer.socket.closedWith).toBe(CLOSE_SLOW_CONSUMER);
        closedSlow++;
        reconnect(viewer);
      } else readAll(viewer, viewer.slow ? rnd.int(2) : undefined);
    }
    await vi.advanceTimersByTimeAsync(rnd.int(8));
  }

  // Settle: everyone reads everything, catch-ups finish, the last live captions arrive.
  for (const viewer of viewers) viewer.slow = false;
  for (let k = 0; k < 200; k++) {
    uws.drain();
    for (const viewer of viewers) {
      if (viewer.socket.closedWith !== undefined) {
        closedSlow++;
        reconnect(viewer);
      } else readAll(viewer);
    }
    await vi.advanceTimersByTimeAsync(10);
  }
  append(5); // live traffic after every catch-up is done
  uws.drain();
  for (const viewer of viewers) readAll(viewer);

  // Check: per connection and channel, each `subscribed` answer opens a segment that must be exactly
  // the start of the channel's captions after its position; the last segment must reach the end.
  const expected = (channel: string, position: string) => {
    const [p, o] = position.split(':').map(Number) as [number, number];
    return log.filter((x) => x.channel === channel && !x.repeat && x.partition === p && x.offset > o).map((x) => formatPosition(x));
  };
  const segments = new Map<string, { since: string; got: string[]; viewer: Viewer; socket: FakeSocket; channel: string }[]>();
  for (const { viewer, socket, m } of events) {
    const key = `${connections.findIndex((c) => c.socket === socket)}|${m.channel}`;
    if (m.type === 'subscribed') {
      if (!segments.has(key)) segments.set(key, []);
      segments.get(key)!.push({ since: m.position!, got: [], viewer, socket, channel: m.channel! });
      expect(m.batch === true, 'the answer says whether batches were granted').toBe(viewer.batch);
    } else if (m.type === 'caption') {
      const list = segments.get(key);
      expect(list, `a caption of ${m.channel} before any subscribed answer`).toBeDefined();
      list!.at(-1)!.got.push(m.position!);
    } else if (m.type !== 'unsubscribed') throw new Error(`unexpected message ${JSON.stringify(m)}`);
  }
  let checked = 0;
  for (const list of segments.values()) {
    list.forEach((seg, i) => {
      const want = expected(seg.channel, seg.since);
      const last = i === list.length - 1 && seg.socket.closedWith === undefined;
      const context = `seed ${seed}, ${seg.channel} since ${seg.since}`;
      if (last) expect(seg.got, context).toEqual(want);
      else expect(seg.got, context).toEqual(want.slice(0, seg.got.length));
      checked++;
    });
  }
  expect(checked).toBeGreaterThan(0);
  return { closedSlow, batchFrames, resumed };
}

describe('the hub under random traffic', () => {
  it('gives every subscriber each caption of its channels once, in order, across resumes, 4008 closes and batch frames', async () => {
    vi.useFakeTimers();
    let totals = { closedSlow: 0, batchFrames: 0, resumed: 0 };
    for (let seed = 1; seed <= 25; seed++) {
      const r = await run(seed, 150);
      totals = {
        closedSlow: totals.closedSlow + r.closedSlow,
        batchFrames: totals.batchFrames + r.batchFrames,
        resumed: totals.resumed + r.resumed,
      };
    }
    // The mix did exercise what it is about.
    expect(totals.closedSlow).toBeGreaterThan(0);
    expect(totals.batchFrames).toBeGreaterThan(0);
    expect(totals.resumed).toBeGreaterThan(0);
  });
});

// A fanout that has just started reads the last records of each partition again to warm its
// history up, while clients already subscribe: some resuming from positions another fanout (or
// this one before a restart) handed out, ahead of what this one has read so far.
describe('a fanout still warming its history up', () => {
  const CHANNEL = 'news';
  const P = partitionFor(CHANNEL, PARTITIONS);
  /** The partition held records 0..11 of CHANNEL before this fanout started. */
  const BEFORE = 12;

  function started() {
    const uws = new FakeUws();
    const archive = new Archive();
    const liveFrom = Array<number>(PARTITIONS).fill(0);
    liveFrom[P] = BEFORE;
    const hub = new Hub({
      partitions: PARTITIONS,
      startOffsets: Array(PARTITIONS).fill(0),
      liveFrom,
      historyCapacity: 100,
      maxBackpressure: MAX_BACKPRESSURE,
      archive,
      stats: { delivered: () => undefined, slowClosed: () => undefined, fannedOut: () => undefined },
      feed: captionsFeed(),
    });
    hub.publishWith(uws);
    const record = (offset: number) => {
      const data: CaptionFragmentReceived = {
        channel: CHANNEL,
        station: 'studio',
        seq: offset + 1,
        text: `#${offset + 1}`,
        start: offset * 1000,
        end: offset * 1000 + 500,
        mode: 'rollup',
        lang: 'en',
        receivedAt: Date.now(),
      };
      archive.rows[P]!.push({ offset, channel: CHANNEL, json: captionMessage(data, formatPosition({ partition: P, offset })) });
      archive.applied[P] = offset + 1;
      return { offset, data };
    };
    /** The tail consumer hands the hub records [from, to) in batches of `size`, uWS writing after each. */
    const read = (from: number, to: number, size = 4) => {
      for (let o = from; o < to; o += size) {
        const records = [];
        for (let k = o; k < Math.min(to, o + size); k++) records.push(record(k));
        hub.onRecords(P, records, Math.max(BEFORE, to));
        uws.drain();
      }
    };
    const viewer = (batch: boolean) => {
      const socket = new FakeSocket(uws, hub);
      socket.client = new Client(socket);
      /** Every caption's offset the client read, batch frames opened, and the subscribed answers. */
      const seen = () => {
        socket.readSome();
        const out: { offsets: number[]; subscribed: Parsed[] } = { offsets: [], subscribed: [] };
        for (const raw of socket.read) {
          const m = JSON.parse(raw) as Parsed;
          if (m.type === 'subscribed') out.subscribed.push(m);
          for (const c of m.type === 'batch' ? m.messages! : m.type === 'caption' ? [m] : [])
            out.offsets.push(Number(c.position!.split(':')[1]));
        }
        return out;
      };
      return { socket, subscribe: (since?: string) => hub.subscribe(socket.client, CHANNEL, since, batch), seen };
    };
    return { read, viewer };
  }

  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

  for (const batch of [false, true]) {
    const frames = batch ? ' (batch frames)' : '';
    it(`resumes a client from a position ahead of what it has read: each later caption once, in order${frames}`, async () => {
      const { read, viewer } = started();
      const v = viewer(batch);
      v.subscribe(`${P}:4`); // as the previous fanout handed it out: 0..4 read there
      read(0, BEFORE); // the warm-up, then what comes after the start
      read(BEFORE, BEFORE + 3);
      await vi.waitFor(() => expect(v.seen().offsets).toEqual(range(5, BEFORE + 3)));
      expect(v.seen().subscribed).toMatchObject([{ position: `${P}:4`, recovered: true }]);
      read(BEFORE + 3, BEFORE + 6);
      expect(v.seen().offsets).toEqual(range(5, BEFORE + 6));
    });

    it(`gives a client that subscribes without since only what comes after the log end the fanout started at${frames}`, async () => {
      const { read, viewer } = started();
      const v = viewer(batch);
      v.subscribe();
      read(0, 6); // half the warm-up: the client has subscribed at the log's end, 11
      const w = viewer(batch);
      w.subscribe(`${P}:2`); // one more, resuming from a position inside what is read so far
      read(6, BEFORE + 4);
      await vi.waitFor(() => expect(w.seen().offsets).toEqual(range(3, BEFORE + 4)));
      expect(v.seen().subscribed).toMatchObject([{ position: `${P}:${BEFORE - 1}`, recovered: false }]);
      expect(v.seen().offsets).toEqual(range(BEFORE, BEFORE + 4));
    });
  }
});
