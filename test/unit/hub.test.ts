// The fanout hub with fake sockets and an in-memory read model: who gets which caption, once, in order.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Entry } from '../../apps/fanout/history.ts';
import { captionsFeed, userEventsFeed } from '../../apps/fanout/feeds.ts';
import {
  Client,
  Hub,
  type CaptionArchive,
  type HubStats,
  type LiveSourceOptions,
  type LogEnd,
  type Record as LogRecord,
  type Socket,
} from '../../apps/fanout/hub.ts';
import { MAX_SUBSCRIPTIONS, captionMessage } from '../../apps/fanout/protocol.ts';
import { formatPosition } from '../../domain/position.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';

const PARTITIONS = 3;

type Message = { type: string; channel?: string; position?: string; code?: string; message?: string; [k: string]: unknown };

class FakeSocket implements Socket {
  sent: string[] = [];
  buffered = 0;
  /** When set, every send adds its length to the buffer, like a link that does not drain by itself. */
  fillsUp = false;
  /** The most ever buffered. */
  peak = 0;
  dropping = false;
  closed: { code: number; reason: string } | undefined;

  send(message: string): number {
    if (this.dropping) return 2;
    this.sent.push(message);
    if (this.fillsUp) this.buffered += message.length;
    this.peak = Math.max(this.peak, this.buffered);
    return 1;
  }
  bufferedAmount(): number {
    return this.buffered;
  }
  cork(fn: () => void): void {
    fn();
  }
  end(code: number, reason: string): void {
    this.closed = { code, reason };
  }

  messages(): Message[] {
    return this.sent.map((s) => JSON.parse(s) as Message);
  }
  /** The positions of the captions received for a channel, in order. */
  positions(channel: string): string[] {
    return this.messages()
      .filter((m) => m.type === 'caption' && m.channel === channel)
      .map((m) => m.position!);
  }
  last(): Message | undefined {
    return this.messages().at(-1);
  }
}

/** The caption read model as the projector keeps it: every fragment once, applied up to an offset per partition. */
class FakeArchive implements CaptionArchive {
  private readonly rows: Entry[][] = Array.from({ length: PARTITIONS }, () => []);
  private readonly applied = Array<number>(PARTITIONS).fill(0);
  calls = 0;
  failWith: Error | undefined;
  private gate: Promise<void> | undefined;

  apply(partition: number, record: LogRecord, stored: boolean): void {
    if (stored)
      this.rows[partition]!.push({
        offset: record.offset,
        channel: record.data.channel,
        json: captionMessage(record.data, formatPosition({ partition, offset: record.offset })),
      });
    this.applied[partition] = record.offset + 1;
  }

  /** Holds every query until the returned function is called; the snapshot is taken when queried. */
  hold(): () => void {
    let release!: () => void;
    this.gate = new Promise((r) => (release = r));
    return () => {
      this.gate = undefined;
      release();
    };
  }

  async after(channel: string, partition: number, offset: number, limit: number): Promise<{ rows: Entry[]; appliedUpTo: number }> {
    this.calls++;
    if (this.failWith) throw this.failWith;
    const snapshot = {
      rows: this.rows[partition]!.filter((r) => r.channel === channel && r.offset > offset).slice(0, limit),
      appliedUpTo: this.applied[partition]!,
    };
    await this.gate;
    return snapshot;
  }
}

/** The captions topic: appends records, hands them to the hub like the tail consumer, and to the read model like the projector. */
class Log {
  readonly records: { partition: number; record: LogRecord; repeat: boolean }[] = [];
  private readonly next = Array<number>(PARTITIONS).fill(0);
  private readonly seqs = new Map<string, number>();
  private readonly pending: typeof this.records = [];
  /** When false, the read model lags: records reach it only on catchUpArchive(). */
  projecting = true;
  /** When false, the fanout's consumer lags: records reach the hub only on catchUpHub(). */
  consuming = true;
  private readonly unconsumed = new Map<number, LogRecord[]>();

  constructor(
    private readonly hub: Hub,
    private readonly archive: FakeArchive,
  ) {}

  /** Appends one fragment (the station's next seq unless given) and fans it out; returns its position. */
  publish(channel: string, opts: { station?: string; seq?: number } = {}): string {
    return this.publishBatch([{ channel, ...opts }])[0]!;
  }

  /** Appends fragments; each partition's share reaches the hub as one batch. */
  publishBatch(fragments: { channel: string; station?: string; seq?: number }[]): string[] {
    const batches = new Map<number, LogRecord[]>();
    const positions = fragments.map(({ channel, station = 'studio', seq }) => {
      const key = `${channel}/${station}`;
      const last = this.seqs.get(key) ?? -1;
      const s = seq ?? last + 1;
      this.seqs.set(key, Math.max(last, s));
      const partition = partitionFor(channel, PARTITIONS);
      const offset = this.next[partition]!++;
      const data: CaptionFragmentReceived = {
        channel,
        station,
        seq: s,
        text: `${channel} ${station} #${s}`,
        start: 1000 * s,
        end: 1000 * s + 500,
        mode: 'rollup',
        lang: 'en',
        receivedAt: Date.now(),
      };
      const entry = { partition, record: { offset, data }, repeat: s <= last };
      this.records.push(entry);
      this.pending.push(entry);
      let batch = batches.get(partition);
      if (!batch) batches.set(partition, (batch = []));
      batch.push(entry.record);
      return formatPosition({ partition, offset });
    });
    if (this.projecting) this.catchUpArchive();
    for (const [partition, batch] of batches) this.unconsumed.set(partition, [...(this.unconsumed.get(partition) ?? []), ...batch]);
    if (this.consuming) this.catchUpHub();
    return positions;
  }

  catchUpHub(): void {
    for (const [partition, batch] of this.unconsumed) this.hub.onRecords(partition, batch, this.end(partition));
    this.unconsumed.clear();
  }

  /** Hands the fanout only the first `n` records it has not read of a partition, with the end of
   *  the partition as a broker reports it with a fetch: a consumer that is behind. */
  catchUpHubPartly(partition: number, n: number): void {
    const batch = this.unconsumed.get(partition) ?? [];
    this.hub.onRecords(partition, batch.splice(0, n), this.end(partition));
  }

  /** The offset the partition's next record gets, as Kafka would answer. */
  end(partition: number): number {
    return this.next[partition]!;
  }

  catchUpArchive(): void {
    for (const { partition, record, repeat } of this.pending.splice(0)) this.archive.apply(partition, record, !repeat);
  }

  /** What a client that subscribed to `channel` after `since` must receive: every fragment once, in order. */
  expected(channel: string, since: string): string[] {
    const after = Number(since.split(':')[1]);
    return this.records
      .filter((r) => r.record.data.channel === channel && !r.repeat && r.record.offset > after)
      .map((r) => formatPosition({ partition: r.partition, offset: r.record.offset }));
  }
}

// A test that fakes the clock gets the real one back.
afterEach(() => void vi.useRealTimers());

/** On a faked clock: lets the hub do everything it has started (every promise, every timer), so
 *  what it has not sent by then it never sends. */
const settled = () => vi.runAllTimersAsync();

function setup(
  opts: { capacity?: number; maxBackpressure?: number; recoveryTimeoutMs?: number; liveFrom?: number[]; logEnd?: LogEnd } = {},
) {
  const archive = new FakeArchive();
  const counts = { delivered: 0, slowClosed: 0, fannedOut: 0 };
  const stats: HubStats = {
    delivered: (n) => void (counts.delivered += n),
    slowClosed: () => void counts.slowClosed++,
    fannedOut: () => void counts.fannedOut++,
  };
  const hub = new Hub({
    partitions: PARTITIONS,
    startOffsets: Array(PARTITIONS).fill(0),
    historyCapacity: opts.capacity ?? 1000,
    maxBackpressure: opts.maxBackpressure ?? 1_000_000,
    archive,
    stats,
    recoveryTimeoutMs: opts.recoveryTimeoutMs ?? 5000,
    liveFrom: opts.liveFrom,
    feed: captionsFeed(),
    logEnd: opts.logEnd,
  });
  const log = new Log(hub, archive);
  const connect = () => {
    const socket = new FakeSocket();
    return { socket, client: new Client(socket) };
  };
  return { hub, archive, log, counts, connect };
}

/** Channel ids that land on the given partition. */
function channelsOn(partition: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (partitionFor(`ch-${i}`, PARTITIONS) === partition) out.push(`ch-${i}`);
  return out;
}

const [news, sports, weather] = channelsOn(1, 3) as [string, string, string];
const [elsewhere] = channelsOn(2, 1) as [string];
const partitionOf = (channel: string) => partitionFor(channel, PARTITIONS);

describe('live delivery', () => {
  it('sends a caption only to the subscribers of its channel, even on a shared partition', () => {
    // Given alice on news, bob on sports (same partition), carol on nothing
    const { hub, log, connect } = setup();
    const alice = connect();
    const bob = connect();
    const carol = connect();
    hub.subscribe(alice.client, news);
    hub.subscribe(bob.client, sports);
    // When captions arrive on news, sports, weather and another partition
    const n1 = log.publish(news);
    const s1 = log.publish(sports);
    log.publish(weather);
    log.publish(elsewhere);
    const n2 = log.publish(news);
    // Then each gets only its channel's captions, in order
    expect(alice.socket.positions(news)).toEqual([n1, n2]);
    expect(alice.socket.messages().filter((m) => m.type === 'caption')).toHaveLength(2);
    expect(bob.socket.positions(sports)).toEqual([s1]);
    expect(bob.socket.messages().filter((m) => m.type === 'caption')).toHaveLength(1);
    expect(carol.socket.sent).toEqual([]);
  });

  it('sends the caption as the protocol describes it', () => {
    const { hub, log, connect } = setup();
    const { socket, client } = connect();
    hub.subscribe(client, news);
    const position = log.publish(news, { station: 'studio-b', seq: 7 });
    expect(socket.last()).toEqual({
      type: 'caption',
      channel: news,
      position,
      station: 'studio-b',
      seq: 7,
      text: `${news} studio-b #7`,
      start: 7000,
      end: 7500,
      mode: 'rollup',
      lang: 'en',
    });
  });

  it('without since, confirms the current end and sends only later captions', () => {
    // Given three captions already sent on news
    const { hub, log, connect } = setup();
    log.publish(news);
    log.publish(sports);
    const before = log.publish(news);
    // When a client subscribes without since
    const { socket, client } = connect();
    hub.subscribe(client, news);
    // Then it is told where it starts and gets nothing old
    expect(socket.messages()).toEqual([{ type: 'subscribed', channel: news, position: `${partitionOf(news)}:2`, recovered: false }]);
    expect(before).toBe(`${partitionOf(news)}:2`);
    // And it gets what comes next
    const after = [log.publish(news), log.publish(news)];
    expect(socket.positions(news)).toEqual(after);
  });

  it('without since on a partition that never had a record, starts before the first one', () => {
    const { hub, connect } = setup();
    const { socket, client } = connect();
    hub.subscribe(client, news);
    expect(socket.last()).toMatchObject({ type: 'subscribed', position: `${partitionOf(news)}:-1` });
  });

  it('without since while the fanout is still reading older records after a restart, starts at the log end it had at start', () => {
    // Given a fanout that started when partition 1 ended at offset 50 and is still reading from 0
    const p = partitionOf(news);
    const liveFrom = [0, 0, 0];
    liveFrom[p] = 50;
    const { hub, log, connect } = setup({ liveFrom });
    for (let i = 0; i < 20; i++) log.publish(news);
    // When a client subscribes without since
    const { socket, client } = connect();
    hub.subscribe(client, news);
    // Then it starts at the end of the log, and gets none of the older captions the fanout reads next
    expect(socket.last()).toEqual({ type: 'subscribed', channel: news, position: `${p}:49`, recovered: false });
    const positions = Array.from({ length: 40 }, () => log.publish(news));
    expect(socket.positions(news)).toEqual(positions.slice(30));
  });

  it('delivers a station’s retry once, whether in the same batch or a later one', () => {
    const { hub, log, connect } = setup();
    const { socket, client } = connect();
    hub.subscribe(client, news);
    const [a1, , b1] = log.publishBatch([
      { channel: news, station: 'a', seq: 1 },
      { channel: news, station: 'a', seq: 1 }, // retry in the same batch
      { channel: news, station: 'b', seq: 1 }, // same seq, other station
    ]);
    log.publish(news, { station: 'a', seq: 1 }); // retry in a later batch
    const a2 = log.publish(news, { station: 'a', seq: 2 });
    log.publish(news, { station: 'a', seq: 1 }); // a late, older retry
    log.publish(sports, { station: 'a', seq: 1 }); // the same station and seq on another channel is not a retry
    expect(socket.positions(news)).toEqual([a1, b1, a2]);
    expect(socket.positions(news)).toEqual(log.expected(news, `${partitionOf(news)}:-1`));
  });

  it('ignores records fetched again (offsets it has already seen)', () => {
    const { hub, log, connect } = setup();
    const { socket, client } = connect();
    hub.subscribe(client, news);
    log.publish(news);
    const last = log.publish(news);
    hub.onRecords(
      partitionOf(news),
      log.records.map((r) => r.record),
    );
    hub.onRecords(partitionOf(news), [log.records[0]!.record]);
    expect(socket.positions(news)).toHaveLength(2);
    // and the hub still knows where the partition ends
    expect(hub.history(partitionOf(news)).next).toBe(2);
    const late = connect();
    hub.subscribe(late.client, news);
    expect(late.socket.last()).toMatchObject({ type: 'subscribed', position: last });
  });

  it('stops sending after unsubscribe, and confirms it', () => {
    const { hub, log, connect } = setup();
    const { socket, client } = connect();
    hub.subscribe(client, news);
    hub.subscribe(client, sports);
    log.publish(news);
    hub.unsubscribe(client, news);
    expect(socket.last()).toEqual({ type: 'unsubscribed', channel: news });
    log.publish(news);
    const s = log.publish(sports);
    expect(socket.positions(news)).toHaveLength(1);
    expect(socket.positions(sports)).toEqual([s]);
    expect(hub.subscriptionCount()).toBe(1);
  });

  it('replaces a subscription to the same channel instead of doubling it', () => {
    const { hub, log, connect } = setup();
    const { socket, client } = connect();
    hub.subscribe(client, news);
    hub.subscribe(client, news);
    const p = log.publish(news);
    expect(socket.positions(news)).toEqual([p]);
    expect(hub.subscriptionCount()).toBe(1);
  });

  it('sends nothing more to a disconnected client and forgets it', () => {
    const { hub, log, connect } = setup();
    const { socket, client } = connect();
    hub.subscribe(client, news);
    hub.subscribe(client, sports);
    hub.disconnect(client);
    log.publish(news);
    expect(socket.positions(news)).toEqual([]);
    expect(hub.subscriptionCount()).toBe(0);
  });
});

describe('resuming with since from the partition history', () => {
  it('gets exactly the missed captions, then live ones, with no gap and no duplicate', () => {
    // Given ten captions on the partition, four of them on news
    const { hub, log, connect } = setup({ capacity: 100 });
    const positions = log.publishBatch(
      [news, sports, news, weather, news, sports, news, weather, sports, sports].map((channel) => ({ channel })),
    );
    const since = positions[2]!; // the second news caption
    // When a client resumes after it
    const { socket, client } = connect();
    hub.subscribe(client, news, since);
    // Then it gets the news captions after since, then live ones
    expect(socket.messages()[0]).toEqual({ type: 'subscribed', channel: news, position: since, recovered: true });
    expect(socket.positions(news)).toEqual([positions[4], positions[6]]);
    log.publish(sports);
    log.publish(news);
    log.publish(news);
    expect(socket.positions(news)).toEqual(log.expected(news, since));
  });

  it('gets nothing old when since is the latest position', () => {
    const { hub, log, connect } = setup();
    log.publish(news);
    const latest = log.publish(news);
    const { socket, client } = connect();
    hub.subscribe(client, news, latest);
    expect(socket.positions(news)).toEqual([]);
    const next = log.publish(news);
    expect(socket.positions(news)).toEqual([next]);
  });

  it('is paced by the socket buffer: the backlog is sent as the link drains, never all at once, and nothing is lost', async () => {
    // Given 300 missed captions and a link that holds everything sent until it drains
    const maxBackpressure = 10_000;
    const { hub, log, connect } = setup({ capacity: 1000, maxBackpressure });
    for (let i = 0; i < 300; i++) log.publish(news);
    const { socket, client } = connect();
    socket.fillsUp = true;
    // When the client resumes from the start while captions keep coming
    const since = `${partitionOf(news)}:-1`;
    hub.subscribe(client, news, since);
    const firstBurst = socket.positions(news).length;
    expect(firstBurst).toBeGreaterThan(0);
    expect(firstBurst).toBeLessThan(300);
    expect(socket.peak).toBeLessThanOrEqual(maxBackpressure / 2 + 500);
    const drain = setInterval(() => (socket.buffered = 0), 2);
    try {
      for (let i = 0; i < 20; i++) {
        log.publish(news);
        await new Promise((r) => setTimeout(r, 3));
      }
      // Then it gets all of them, in order, once, without ever being more than half the limit behind
      await vi.waitFor(() => expect(socket.positions(news)).toEqual(log.expected(news, since)), { timeout: 5000 });
    } finally {
      clearInterval(drain);
    }
    expect(socket.closed).toBeUndefined();
    expect(socket.peak).toBeLessThanOrEqual(maxBackpressure / 2 + 500);
    log.publish(news);
    expect(socket.positions(news)).toEqual(log.expected(news, since));
  });
});

describe('resuming with since older than the partition history', () => {
  it('gets the read model’s rows, then the history, then live, with no gap and no duplicate', async () => {
    // Given a history of 5 records, and 40 records on the partition, all in the read model
    const { hub, archive, log, connect } = setup({ capacity: 5 });
    for (let i = 0; i < 40; i++) log.publish([news, sports, weather][i % 3]!);
    const since = `${partitionOf(news)}:3`;
    expect(hub.history(partitionOf(news)).covers(3)).toBe(false);
    // When a client resumes from an old position
    const { socket, client } = connect();
    hub.subscribe(client, news, since);
    // Then it gets everything after it, then live captions
    await vi.waitFor(() => expect(socket.positions(news)).toEqual(log.expected(news, since)));
    expect(archive.calls).toBeGreaterThan(0);
    log.publish(news);
    log.publish(news);
    expect(socket.positions(news)).toEqual(log.expected(news, since));
    expect(new Set(socket.positions(news)).size).toBe(socket.positions(news).length);
  });

  it('waits for a read model that is behind the history, then continues', async () => {
    // Given a read model that has applied only the first 20 of 60 records, and a history of 5
    const { hub, log, archive, connect } = setup({ capacity: 5 });
    log.projecting = false;
    for (let i = 0; i < 20; i++) log.publish(i % 2 ? news : sports);
    log.catchUpArchive();
    for (let i = 0; i < 40; i++) log.publish(i % 2 ? news : sports);
    // When a client resumes from the beginning
    const { socket, client } = connect();
    const since = `${partitionOf(news)}:-1`;
    hub.subscribe(client, news, since);
    // Then it gets what the read model has, and nothing after it while there is a hole
    await vi.waitFor(() => expect(socket.positions(news)).toEqual(log.expected(news, since).slice(0, 10)));
    // (it has asked the read model twice more since, and acted on the first of those answers)
    const asked = archive.calls;
    await vi.waitFor(() => expect(archive.calls).toBeGreaterThanOrEqual(asked + 2));
    expect(socket.positions(news)).toHaveLength(10);
    // And once the read model catches up, the rest, then live
    log.catchUpArchive();
    await vi.waitFor(() => expect(socket.positions(news)).toEqual(log.expected(news, since)));
    log.projecting = true;
    log.publish(news);
    expect(socket.positions(news)).toEqual(log.expected(news, since));
    expect(archive.calls).toBeGreaterThan(1);
  });

  it.each([
    ['the history still holds what arrived meanwhile', 25],
    ['the history evicted past the read model’s answer meanwhile', 5],
  ])('loses and repeats nothing when captions arrive while the read model is queried (%s)', async (_name, capacity) => {
    // Given 30 records, the oldest no longer in the history
    const { hub, log, archive, connect } = setup({ capacity });
    for (let i = 0; i < 30; i++) log.publish(i % 3 ? news : weather);
    const since = `${partitionOf(news)}:-1`;
    // When a client resumes from the start and the read model is slow to answer
    const release = archive.hold();
    const { socket, client } = connect();
    hub.subscribe(client, news, since);
    expect(archive.calls).toBe(1);
    // And 20 more captions arrive meanwhile
    for (let i = 0; i < 20; i++) log.publish(i % 2 ? news : sports);
    expect(socket.positions(news)).toEqual([]);
    release();
    // Then it gets every caption once, in order, and stays live
    await vi.waitFor(() => expect(socket.positions(news)).toEqual(log.expected(news, since)));
    log.publish(news);
    expect(socket.positions(news)).toEqual(log.expected(news, since));
  });

  it('repeats nothing when the read model is ahead of the fanout’s own consumer', async () => {
    // Given a history of 5 holding records up to 29, and a read model that already has 10 more
    const { hub, log, connect } = setup({ capacity: 5 });
    for (let i = 0; i < 30; i++) log.publish(i % 2 ? news : sports);
    log.consuming = false;
    for (let i = 0; i < 10; i++) log.publish(i % 2 ? news : sports);
    // When a client resumes from an old position
    const { socket, client } = connect();
    const since = `${partitionOf(news)}:0`;
    hub.subscribe(client, news, since);
    await vi.waitFor(() => expect(socket.positions(news)).toEqual(log.expected(news, since)));
    // Then the records the read model already sent it are not sent again when the fanout reads them
    log.consuming = true;
    log.catchUpHub();
    log.publish(news);
    expect(socket.positions(news)).toEqual(log.expected(news, since));
  });

  it('is paced by the socket buffer from the read model too, without skipping rows it could not send yet', async () => {
    // Given 300 missed captions only the read model still has, and a link that holds what is sent until it drains
    const maxBackpressure = 10_000;
    const { hub, log, connect } = setup({ capacity: 5, maxBackpressure });
    for (let i = 0; i < 300; i++) log.publish(news);
    const { socket, client } = connect();
    socket.fillsUp = true;
    // When it resumes from the start
    const since = `${partitionOf(news)}:-1`;
    hub.subscribe(client, news, since);
    const drain = setInterval(() => (socket.buffered = 0), 2);
    try {
      // Then it gets all of them, in order, once
      await vi.waitFor(() => expect(socket.positions(news)).toEqual(log.expected(news, since)), { timeout: 5000 });
    } finally {
      clearInterval(drain);
    }
    expect(socket.peak).toBeLessThanOrEqual(maxBackpressure / 2 + 500);
    expect(socket.closed).toBeUndefined();
  });

  it('tells the client to try again when the read model fails, and drops the subscription', async () => {
    const { hub, log, archive, connect } = setup({ capacity: 2 });
    for (let i = 0; i < 10; i++) log.publish(news);
    archive.failWith = new Error('connection refused');
    const { socket, client } = connect();
    hub.subscribe(client, news, `${partitionOf(news)}:0`);
    await vi.waitFor(() => expect(socket.last()).toMatchObject({ type: 'error', code: 'unavailable', channel: news }));
    expect(socket.last()?.message).toMatch(/since/);
    expect(hub.subscriptionCount()).toBe(0);
    log.publish(news);
    expect(socket.positions(news)).toEqual([]);
  });

  it('gives up with unavailable when the read model stays behind the history for too long', async () => {
    const { hub, log, connect } = setup({ capacity: 2, recoveryTimeoutMs: 200 });
    log.projecting = false;
    for (let i = 0; i < 10; i++) log.publish(news);
    const { socket, client } = connect();
    hub.subscribe(client, news, `${partitionOf(news)}:0`);
    await vi.waitFor(() => expect(socket.last()).toMatchObject({ type: 'error', code: 'unavailable', channel: news }), { timeout: 2000 });
    expect(hub.subscriptionCount()).toBe(0);
  });

  it('stops recovering for a client that disconnects meanwhile', async () => {
    vi.useFakeTimers();
    const { hub, log, archive, connect } = setup({ capacity: 2 });
    for (let i = 0; i < 10; i++) log.publish(news);
    const release = archive.hold();
    const { socket, client } = connect();
    hub.subscribe(client, news, `${partitionOf(news)}:0`);
    hub.disconnect(client);
    release();
    await settled();
    expect(socket.positions(news)).toEqual([]);
    expect(hub.subscriptionCount()).toBe(0);
  });
});

describe('a since beyond the end of the log', () => {
  /** A hub whose Kafka answers "where does this partition end" from the log, counting the
   *  calls, holding them while `gate` is set and failing them with `failWith`. */
  function withKafka() {
    const ref: { log?: Log } = {};
    const kafka = { calls: 0, gate: undefined as Promise<void> | undefined, failWith: undefined as Error | undefined };
    const logEnd: LogEnd = async (partition) => {
      kafka.calls++;
      await kafka.gate;
      if (kafka.failWith) throw kafka.failWith;
      return ref.log!.end(partition);
    };
    const s = setup({ logEnd });
    ref.log = s.log;
    return { ...s, kafka };
  }

  it.each([
    ['the next offset the partition will have', 0],
    ['far past it', 1_000_000],
  ])('is refused with invalid_position naming since (%s), and nothing is subscribed', (_name, past) => {
    // Given three captions on news, at offsets 0..2 of its partition
    const { hub, log, connect } = setup();
    for (let i = 0; i < 3; i++) log.publish(news);
    const p = partitionOf(news);
    // When a client resumes after an offset the partition does not have
    const { socket, client } = connect();
    hub.subscribe(client, news, `${p}:${3 + past}`);
    // Then it is told why, and is not left waiting for captions that will not come
    expect(socket.messages()).toEqual([
      {
        type: 'error',
        code: 'invalid_position',
        field: 'since',
        channel: news,
        message: expect.stringMatching(new RegExp(`^since: ${p}:${3 + past} is beyond the end of the log \\(its last offset is 2`)),
      },
    ]);
    expect(hub.subscriptionCount()).toBe(0);
    log.publish(news);
    expect(socket.positions(news)).toEqual([]);
  });

  it('is refused on a partition that has no record yet, where -1 (before the first) is fine', () => {
    const { hub, log, connect } = setup();
    const p = partitionOf(news);
    const { socket, client } = connect();
    hub.subscribe(client, news, `${p}:0`);
    expect(socket.last()).toMatchObject({
      type: 'error',
      code: 'invalid_position',
      field: 'since',
      message: expect.stringMatching(/no records yet/),
    });
    hub.subscribe(client, news, `${p}:-1`);
    expect(socket.last()).toEqual({ type: 'subscribed', channel: news, position: `${p}:-1`, recovered: true });
    const first = log.publish(news);
    expect(socket.positions(news)).toEqual([first]);
  });

  it('is not what a fanout that is behind Kafka has not read yet: that position is served once read', () => {
    // Given 10 captions on news, of which the fanout has read 4, the broker saying there are 10
    const { hub, log, connect } = setup();
    log.consuming = false;
    const positions = Array.from({ length: 10 }, () => log.publish(news));
    log.catchUpHubPartly(partitionOf(news), 4);
    expect(hub.history(partitionOf(news)).next).toBe(4);
    // When a client resumes after the 8th (which another fanout sent it)
    const { socket, client } = connect();
    hub.subscribe(client, news, positions[7]!);
    // Then it is subscribed from there, and gets what comes after it once the fanout has read it
    expect(socket.messages()).toEqual([{ type: 'subscribed', channel: news, position: positions[7], recovered: true }]);
    log.catchUpHub();
    log.consuming = true;
    const next = log.publish(news);
    expect(socket.positions(news)).toEqual([...positions.slice(8), next]);
  });

  it('past everything the fanout has seen is checked with Kafka, and served when the log has it', async () => {
    // Given a fanout that has not fetched the last 5 of 8 captions at all (it knows of 3)
    const { hub, log, kafka } = withKafka();
    log.publish(news);
    log.publish(news);
    log.publish(news);
    log.consuming = false;
    const positions = Array.from({ length: 5 }, () => log.publish(news));
    // When a client resumes after the 6th (offset 5)
    const socket = new FakeSocket();
    hub.subscribe(new Client(socket), news, positions[2]!);
    // Then Kafka is asked, the subscription is confirmed, and it continues with what follows
    await vi.waitFor(() =>
      expect(socket.messages()).toEqual([{ type: 'subscribed', channel: news, position: positions[2], recovered: true }]),
    );
    expect(kafka.calls).toBe(1);
    log.catchUpHub();
    expect(socket.positions(news)).toEqual(positions.slice(3));
  });

  it('past the end Kafka reports is refused after asking', async () => {
    const { hub, log, kafka } = withKafka();
    log.publish(news);
    const socket = new FakeSocket();
    hub.subscribe(new Client(socket), news, `${partitionOf(news)}:1`);
    await vi.waitFor(() => expect(socket.last()).toMatchObject({ type: 'error', code: 'invalid_position', field: 'since', channel: news }));
    expect(kafka.calls).toBe(1);
    expect(hub.subscriptionCount()).toBe(0);
  });

  it('when Kafka cannot be asked, is answered unavailable (no field: the request was fine) and holds nothing', async () => {
    const { hub, kafka } = withKafka();
    kafka.failWith = new Error('broker unreachable');
    const socket = new FakeSocket();
    hub.subscribe(new Client(socket), news, `${partitionOf(news)}:7`);
    await vi.waitFor(() => expect(socket.last()).toMatchObject({ type: 'error', code: 'unavailable', channel: news }));
    expect(socket.last()).not.toHaveProperty('field');
    expect(socket.last()?.message).toMatch(/same since/);
    expect(hub.subscriptionCount()).toBe(0);
  });

  it('many such requests at once cost at most two lookups, and each gets its own answer', async () => {
    const { hub, log, kafka } = withKafka();
    log.consuming = false;
    for (let i = 0; i < 5; i++) log.publish(news); // offsets 0..4, none read by the fanout
    let release!: () => void;
    kafka.gate = new Promise((r) => (release = r));
    const p = partitionOf(news);
    const good = Array.from({ length: 50 }, () => new FakeSocket());
    const bad = Array.from({ length: 50 }, () => new FakeSocket());
    hub.subscribe(new Client(good[0]!), news, `${p}:2`); // starts a lookup
    for (const s of good.slice(1)) hub.subscribe(new Client(s), news, `${p}:4`); // wait for the next one
    for (const s of bad) hub.subscribe(new Client(s), news, `${p}:5`);
    expect(kafka.calls).toBe(1);
    release();
    await vi.waitFor(() => expect([...good, ...bad].every((s) => s.sent.length === 1)).toBe(true));
    expect(kafka.calls).toBe(2);
    expect(good.map((s) => s.last()?.type)).toEqual(good.map(() => 'subscribed'));
    expect(bad.map((s) => s.last()?.code)).toEqual(bad.map(() => 'invalid_position'));
  });

  it('a client that unsubscribes while the check runs gets no late answer to it', async () => {
    vi.useFakeTimers();
    const { hub, kafka } = withKafka();
    let release!: () => void;
    kafka.gate = new Promise((r) => (release = r));
    const socket = new FakeSocket();
    const client = new Client(socket);
    hub.subscribe(client, news, `${partitionOf(news)}:9`);
    hub.unsubscribe(client, news);
    release();
    await settled();
    expect(kafka.calls).toBe(1);
    expect(socket.messages()).toEqual([{ type: 'unsubscribed', channel: news }]);
    expect(hub.subscriptionCount()).toBe(0);
  });
});

describe('slow consumers', () => {
  it('closes a client over its backpressure limit with 4008 and a reason that says to resume with since', () => {
    // Given a client whose socket has more buffered than the limit
    const { hub, log, counts, connect } = setup({ maxBackpressure: 1000 });
    const { socket, client } = connect();
    const other = connect();
    hub.subscribe(client, news);
    hub.subscribe(other.client, news);
    socket.buffered = 1001;
    // When a caption arrives
    const p = log.publish(news);
    // Then that client is closed, not skipped, and the others still get it
    expect(socket.closed?.code).toBe(4008);
    expect(socket.closed?.reason).toMatch(/since/);
    expect(socket.positions(news)).toEqual([]);
    expect(other.socket.positions(news)).toEqual([p]);
    expect(counts.slowClosed).toBe(1);
    // And once the server reports the close, it is forgotten
    hub.disconnect(client);
    log.publish(news);
    expect(socket.positions(news)).toEqual([]);
    expect(hub.subscriptionCount()).toBe(1);
  });

  it('keeps a client exactly at the limit', () => {
    const { hub, log, connect } = setup({ maxBackpressure: 1000 });
    const { socket, client } = connect();
    hub.subscribe(client, news);
    socket.buffered = 1000;
    log.publish(news);
    expect(socket.closed).toBeUndefined();
    expect(socket.positions(news)).toHaveLength(1);
  });

  it('closes a client whose message the socket dropped, after the last one it did get', () => {
    const { hub, log, connect } = setup();
    const { socket, client } = connect();
    hub.subscribe(client, news);
    const delivered = log.publish(news);
    socket.dropping = true;
    log.publish(news);
    expect(socket.closed?.code).toBe(4008);
    expect(socket.positions(news)).toEqual([delivered]);
  });

  it('closes a resuming client that does not drain in time', async () => {
    const { hub, log, connect } = setup({ maxBackpressure: 1000, recoveryTimeoutMs: 100 });
    for (let i = 0; i < 100; i++) log.publish(news);
    const { socket, client } = connect();
    socket.fillsUp = true;
    hub.subscribe(client, news, `${partitionOf(news)}:-1`);
    await vi.waitFor(() => expect(socket.closed?.code).toBe(4008));
    // What it did get is a prefix of what it missed, so resuming from its last position loses nothing
    const got = socket.positions(news);
    expect(got).toEqual(log.expected(news, `${partitionOf(news)}:-1`).slice(0, got.length));
  });
});

describe('refused subscriptions', () => {
  it.each([
    ['upper case', 'News'],
    ['a space', 'bbc one'],
    ['a leading dot', '.news'],
    ['65 characters', 'a'.repeat(65)],
    ['a slash', 'a/b'],
  ])('an invalid channel (%s) gets invalid_channel', (_name, channel) => {
    const { hub, connect } = setup();
    const { socket, client } = connect();
    hub.subscribe(client, channel);
    expect(socket.messages()).toEqual([
      { type: 'error', code: 'invalid_channel', field: 'channel', message: expect.stringMatching(/^channel: must match /), channel },
    ]);
    expect(hub.subscriptionCount()).toBe(0);
  });

  it('an empty channel gets invalid_channel', () => {
    const { hub, connect } = setup();
    const { socket, client } = connect();
    hub.subscribe(client, '');
    expect(socket.last()).toMatchObject({ type: 'error', code: 'invalid_channel' });
  });

  it.each(['garbage', '1', '1:', ':5', '0:-2', '', '1:1.5', '01:3'])('a malformed since (%j) gets invalid_position', (since) => {
    const { hub, connect } = setup();
    const { socket, client } = connect();
    hub.subscribe(client, news, since);
    expect(socket.messages()).toEqual([
      { type: 'error', code: 'invalid_position', field: 'since', message: expect.stringMatching(/^since: /), channel: news },
    ]);
    expect(hub.subscriptionCount()).toBe(0);
  });

  it('a since of another channel’s partition gets invalid_position, and the subscription is not made', () => {
    const { hub, log, connect } = setup();
    const theirs = log.publish(elsewhere);
    const { socket, client } = connect();
    hub.subscribe(client, news, theirs);
    expect(socket.messages()).toEqual([
      { type: 'error', code: 'invalid_position', field: 'since', message: expect.stringMatching(/another channel/), channel: news },
    ]);
    log.publish(news);
    expect(socket.positions(news)).toEqual([]);
    expect(hub.subscriptionCount()).toBe(0);
  });

  it(`a subscription past ${MAX_SUBSCRIPTIONS} channels gets too_many_subscriptions; resubscribing one already held does not`, () => {
    const { hub, log, connect } = setup();
    const { socket, client } = connect();
    for (let i = 0; i < MAX_SUBSCRIPTIONS; i++) hub.subscribe(client, `c${i}`);
    expect(socket.messages().filter((m) => m.type === 'subscribed')).toHaveLength(MAX_SUBSCRIPTIONS);
    hub.subscribe(client, 'one-more');
    expect(socket.last()).toMatchObject({ type: 'error', code: 'too_many_subscriptions', field: 'channel', channel: 'one-more' });
    expect(hub.subscriptionCount()).toBe(MAX_SUBSCRIPTIONS);
    log.publish('one-more');
    expect(socket.positions('one-more')).toEqual([]);
    hub.subscribe(client, 'c0');
    expect(socket.last()).toMatchObject({ type: 'subscribed', channel: 'c0' });
    hub.unsubscribe(client, 'c1');
    hub.subscribe(client, 'one-more');
    expect(socket.last()).toMatchObject({ type: 'subscribed', channel: 'one-more' });
  });
});

describe('feeds without a read model behind them', () => {
  const stats: HubStats = { delivered: () => undefined, slowClosed: () => undefined, fannedOut: () => undefined };
  const userId = '7d6f6a52-3a5e-4c1e-9f0e-2b1f9b6e7a10';
  const event = (offset: number, type = 'UploadChunkAppended') => ({ offset, type, data: { userId, at: 1 }, meta: undefined });
  /** A hub of user channels, over the streams topic or (live only) the uploads one. */
  const userHub = async (historyCapacity: number, topic?: 'uploads') => {
    const { userEventsFeed } = await import('../../apps/fanout/feeds.ts');
    const startOffsets = Array(PARTITIONS).fill(0);
    return new Hub({
      partitions: PARTITIONS,
      startOffsets,
      historyCapacity,
      maxBackpressure: 1_000_000,
      stats,
      recoveryTimeoutMs: 5000,
      feed: userEventsFeed(topic),
    });
  };

  it('a channel spread over partitions gets every event once, whatever the offsets', async () => {
    const hub = await userHub(100, 'uploads');
    const socket = new FakeSocket();
    hub.subscribe(new Client(socket), `user:${userId}`);
    // Offsets of different partitions are unrelated: a later event may have a smaller one.
    hub.onRecords(2, [event(50)]);
    hub.onRecords(0, [event(3)]);
    hub.onRecords(1, [event(7), event(8)]);
    expect(
      socket
        .messages()
        .filter((m) => m.type === 'event')
        .map((m) => m.position),
    ).toEqual(['uploads/2:50', 'uploads/0:3', 'uploads/1:7', 'uploads/1:8']);
  });

  it('a since beyond the end of a user channel’s partition gets invalid_position too', async () => {
    const hub = await userHub(100);
    const p = partitionFor(userId, PARTITIONS);
    hub.onRecords(
      p,
      [0, 1].map((o) => event(o, 'StreamHeartbeat')),
      2,
    );
    const socket = new FakeSocket();
    hub.subscribe(new Client(socket), `user:${userId}`, `${p}:2`);
    expect(socket.messages()).toEqual([
      {
        type: 'error',
        code: 'invalid_position',
        field: 'since',
        channel: `user:${userId}`,
        message: expect.stringMatching(/beyond the end/),
      },
    ]);
  });

  it('a since older than memory is answered recovered: false, with what memory holds, then live', async () => {
    const hub = await userHub(2);
    const p = partitionFor(userId, PARTITIONS);
    hub.onRecords(
      p,
      [0, 1, 2, 3].map((o) => event(o, 'StreamHeartbeat')),
    );
    const socket = new FakeSocket();
    vi.useFakeTimers();
    hub.subscribe(new Client(socket), `user:${userId}`, `${p}:0`);
    hub.onRecords(p, [event(4, 'StreamHeartbeat')]);
    await settled();
    const msgs = socket.messages();
    expect(msgs[0]).toMatchObject({ type: 'subscribed', recovered: false, position: `${p}:1` });
    expect(msgs.filter((m) => m.type === 'event').map((m) => m.position)).toEqual([`${p}:2`, `${p}:3`, `${p}:4`]);
  });
});

describe('a user channel fed by several topics', () => {
  const stats: HubStats = { delivered: () => undefined, slowClosed: () => undefined, fannedOut: () => undefined };
  const userId = '7d6f6a52-3a5e-4c1e-9f0e-2b1f9b6e7a10';
  const event = (offset: number, type: string) => ({ offset, type, data: { userId, at: 1 }, meta: undefined });

  const zeros = Array(PARTITIONS).fill(0);
  /** User channels: their own topic (streams) from its start, and these live sources. */
  const userHub = (liveSources: LiveSourceOptions[]) =>
    new Hub({
      partitions: PARTITIONS,
      startOffsets: zeros,
      historyCapacity: 100,
      maxBackpressure: 1_000_000,
      stats,
      feed: userEventsFeed(),
      liveSources,
    });

  it('is one subscription: one answer, one toward the limit, and every source’s events on it', () => {
    const hub = userHub(
      (['uploads', 'encodes'] as const).map((topic) => ({
        topic,
        partitions: PARTITIONS,
        startOffsets: zeros,
        feed: userEventsFeed(topic),
      })),
    );
    const socket = new FakeSocket();
    const client = new Client(socket);
    hub.subscribe(client, `user:${userId}`);
    expect(client.subscriptions).toBe(1);
    expect(socket.messages().filter((m) => m.type === 'subscribed')).toHaveLength(1);
    hub.onRecords(partitionFor(userId, PARTITIONS), [event(0, 'StreamActivated')]);
    hub.onLiveRecords('uploads', 2, [event(10, 'UploadChunkAppended')]);
    hub.onLiveRecords('encodes', 1, [event(4, 'EncodeProgressed')]);
    expect(
      socket
        .messages()
        .filter((m) => m.type === 'event')
        .map((m) => m.event),
    ).toEqual(['StreamActivated', 'UploadChunkAppended', 'EncodeProgressed']);
    // A re-fetch of a live source's records is not sent again.
    hub.onLiveRecords('uploads', 2, [event(10, 'UploadChunkAppended')]);
    expect(socket.messages().filter((m) => m.type === 'event')).toHaveLength(3);
    hub.unsubscribe(client, `user:${userId}`);
    expect(client.subscriptions).toBe(0);
    hub.onLiveRecords('encodes', 1, [event(5, 'EncodeProgressed')]);
    expect(socket.messages().filter((m) => m.type === 'event')).toHaveLength(3);
  });

  it('sends none of what a live source read while warming up, and knows a repeat of it afterwards', () => {
    // The fanout started with 5 alert records in each partition: it reads them back, then live.
    const hub = userHub([
      { topic: 'alerts', partitions: PARTITIONS, startOffsets: zeros, liveFrom: Array(PARTITIONS).fill(5), feed: userEventsFeed('alerts') },
    ]);
    const match = (offset: number, caption: string) => ({
      offset,
      type: 'AlertMatched',
      data: { userId, alertId: 'a1', position: caption, at: 1 },
      meta: undefined,
    });
    const socket = new FakeSocket();
    hub.subscribe(new Client(socket), `user:${userId}`);
    // Read while warming up: the client (back after a fanout restart) had these already.
    hub.onLiveRecords(
      'alerts',
      1,
      [0, 1, 2, 3, 4].map((o) => match(o, `0:${o}`)),
    );
    // The matcher publishing one of them again after the restart is a repeat; the next is news.
    hub.onLiveRecords('alerts', 1, [match(5, '0:2'), match(6, '0:9')]);
    const events = socket.messages().filter((m) => m.type === 'event');
    expect(events.map((m) => m.position)).toEqual(['alerts/1:6']);
  });
});
