// Who listens to which channel, and getting every caption to them once, in order. A client that
// subscribes with `since` gets what it missed first, from memory if the partition history still
// holds it, else from the Postgres read model, then continues live with no gap and no repeat.
import { formatPosition, parsePosition } from '../../domain/position.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { sleep } from '../../infra/retry.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';
import { captionsFeed, type Feed, type FeedRecord } from './feeds.ts';
import { PartitionHistory, type Entry } from './history.ts';
import {
  CLOSE_SLOW_CONSUMER,
  CLOSE_SLOW_REASON,
  MAX_SUBSCRIPTIONS,
  errorMessage,
  refusal,
  batchMessage,
  subscribedMessage,
  unsubscribedMessage,
} from './protocol.ts';

export interface Socket {
  /** 1 sent, 0 sent but buffered, 2 dropped (uWS semantics). */
  send(message: string): number;
  bufferedAmount(): number;
  cork(fn: () => void): void;
  end(code: number, reason: string): void;
  /** Joins or leaves a topic of the hub's Publisher (uWS pub/sub); a socket without them gets every
   *  live caption sent to it one by one. The hub joins a topic once and leaves it once, also after
   *  the socket closed (uWS has taken it off already; the publisher's count learns it so). */
  subscribe?(topic: string): void;
  unsubscribe?(topic: string): void;
}

/** Sends one message to every socket on a topic (uWS app.publish): the same bytes to all, written
 *  per socket by uWS itself, several published messages to one socket in one write. */
export interface Publisher {
  publish(topic: string, message: string): void;
  subscribers(topic: string): number;
  /** Resolves when the hub's consumer may fetch again (slices.ts); absent: at once. */
  written?(): Promise<void>;
}

interface Subscription {
  channel: string;
  partition: number;
  /** Offset of the last record delivered (or skipped as already seen); while on a topic, the
   *  position the topic took over from (the topic carries every record after it). */
  after: number;
  live: boolean;
  /** The client takes batch frames: several waiting captions in one frame. */
  batch: boolean;
  /** The Publisher topic delivering this subscription live, once it is live on one. */
  topic?: string;
}

export class Client {
  /** Subscriptions across every hub, for the per-connection limit. */
  subscriptions = 0;
  closed = false;
  constructor(readonly socket: Socket) {}
}

/** The read model, for clients that were away longer than the partition history reaches. */
export interface CaptionArchive {
  /** Up to `limit` fragments of a channel after an offset, and how far the read model has applied the partition. */
  after(channel: string, partition: number, offset: number, limit: number): Promise<{ rows: Entry[]; appliedUpTo: number }>;
}

/** A caption record, the default feed's input. */
export interface Record extends FeedRecord {
  data: CaptionFragmentReceived;
}

export interface HubStats {
  delivered(n: number): void;
  slowClosed(): void;
  fannedOut(partition: number, offset: number, receivedAt: number): void;
}

/** Asks Kafka where a partition ends now (the offset its next record will get). */
export type LogEnd = (partition: number) => Promise<number>;

const ARCHIVE_PAGE = 1000;
/** Entries of a live source carry no order within the channel: every one is sent. */
const UNORDERED: Subscription = { channel: '', partition: -1, after: -1, live: true, batch: false };
/** Most captions in one batch frame (a catch-up sends its backlog in frames of this many). */
export const BATCH_MAX = 256;
/** The topics a channel is published on: one caption per frame, or batch frames. Channel ids and
 *  user channels never contain '#'. */
const singlesTopic = (channel: string) => channel;
const batchTopic = (channel: string) => `${channel}#batch`;

export interface HubOptions {
  /** Partitions of the topic whose records order this hub's channels (positions, `since`). */
  partitions: number;
  /** Per partition, the offset the history starts at. */
  startOffsets: number[];
  /** Per partition, the log end when the fanout started: "from now on" never means older. */
  liveFrom?: number[];
  historyCapacity: number;
  /** Bytes queued for a socket before it is closed as a slow consumer. */
  maxBackpressure: number;
  /** Where clients find what the history no longer holds; without one, they start from the oldest it holds. */
  archive?: CaptionArchive;
  stats: HubStats;
  /** A catch-up that makes no progress for this long is given up (the client is told). */
  recoveryTimeoutMs?: number;
  feed?: Feed;
  /** Where a `since` past every end this hub has seen is checked before it is refused. */
  logEnd?: LogEnd;
  /**
   * Other topics whose records reach the same channels, live only (a user's uploads and encodes
   * are keyed by upload and job, so they cannot be ordered by the channel's partition): their
   * events go to every subscriber of the channel as they come, under the same one subscription.
   */
  liveSources?: LiveSourceOptions[];
}

export interface LiveSourceOptions {
  topic: string;
  partitions: number;
  startOffsets: number[];
  /**
   * Per partition, the log end when the fanout started. Records before it are read only so that
   * the feed learns what a repeat would look like; they were news before anyone here subscribed,
   * and a client back after a fanout restart already had them.
   */
  liveFrom?: number[];
  feed: Feed;
}

/** A live-only source: its histories only remember where each partition is (never replayed). */
interface LiveSource {
  histories: PartitionHistory[];
  liveFrom: number[];
  feed: Feed;
}

/** A channel's subscriptions. */
interface Listeners {
  all: Map<Client, Subscription>;
  /** Live subscriptions on no publisher topic, sent to one by one: a live round walks only these
   *  (the topics' subscribers are uWS's to write), not every subscriber of the channel. */
  direct: Map<Client, Subscription>;
}

/** Subscribers' buffers are looked at each time 1/CHECK_SHARE of the limit was published to a channel: a
 *  socket on MAX_SUBSCRIPTIONS (256) busy channels is closed by twice the limit at most (uWS's own is 16×). */
const CHECK_SHARE = 256;

export class Hub {
  readonly partitions: number;
  private readonly histories: PartitionHistory[];
  private readonly liveFrom: number[];
  private readonly maxBackpressure: number;
  private readonly archive: CaptionArchive | undefined;
  private readonly stats: HubStats;
  private readonly recoveryTimeoutMs: number;
  private readonly feed: Feed;
  private readonly logEnd: LogEnd | undefined;
  private readonly liveSources = new Map<string, LiveSource>();
  private readonly listeners = new Map<string, Listeners>();
  private publisher: Publisher | undefined;
  /**
   * Per channel, bytes published to its topics since its subscribers' buffers were last looked at.
   * Asking uWS for a socket's buffered amount is a native call per subscriber; asked once per
   * 1/CHECK_SHARE of the limit published rather than every round, a slow socket is closed at most
   * that much (per channel it holds) past the limit.
   */
  private readonly unchecked = new Map<string, number>();
  /** This hub's subscriptions of each client (a client may hold the same channel in other hubs). */
  private readonly subsOf = new WeakMap<Client, Map<string, Subscription>>();

  /** Per partition, the furthest end of the log seen: at start, in fetches, or asked for. */
  private readonly ends: number[];
  /** Per partition, the end lookup running and the one queued behind it. */
  private readonly lookups = new Map<number, { running?: Promise<number>; queued?: Promise<number> }>();

  private subs(client: Client): Map<string, Subscription> {
    let m = this.subsOf.get(client);
    if (!m) this.subsOf.set(client, (m = new Map()));
    return m;
  }

  constructor(o: HubOptions) {
    this.partitions = o.partitions;
    this.liveFrom = o.liveFrom ?? o.startOffsets;
    this.maxBackpressure = o.maxBackpressure;
    this.archive = o.archive;
    this.stats = o.stats;
    this.recoveryTimeoutMs = o.recoveryTimeoutMs ?? 30_000;
    this.feed = o.feed ?? captionsFeed();
    this.logEnd = o.logEnd;
    this.histories = o.startOffsets.map((offset) => new PartitionHistory(o.historyCapacity, offset));
    this.ends = this.histories.map((h, p) => Math.max(h.next, this.liveFrom[p] ?? 0));
    for (const source of o.liveSources ?? []) {
      this.liveSources.set(source.topic, {
        feed: source.feed,
        histories: source.startOffsets.map((offset) => new PartitionHistory(0, offset)),
        liveFrom: source.liveFrom ?? source.startOffsets,
      });
    }
  }

  /** From now on, live captions go out through the publisher to sockets that can join its topics. */
  publishWith(publisher: Publisher): void {
    this.publisher = publisher;
  }

  /** Resolves when what the hub published is written as far as its consumer should wait for. */
  written(): Promise<void> {
    return this.publisher?.written?.() ?? Promise.resolve();
  }

  private knownEnd(partition: number): number {
    return Math.max(this.ends[partition]!, this.histories[partition]!.next);
  }

  /** The partition's end as Kafka tells it after now: callers share one lookup, and one that comes
   *  while a lookup runs waits for the next (the running one may predate its position). */
  private freshEnd(partition: number, ask: LogEnd): Promise<number> {
    let state = this.lookups.get(partition);
    if (!state) this.lookups.set(partition, (state = {}));
    const lookUp = (): Promise<number> => {
      const running = ask(partition).then((end) => {
        this.ends[partition] = Math.max(this.ends[partition]!, end);
        return end;
      });
      state.running = running;
      const clear = () => void (state.running === running && (state.running = undefined));
      running.then(clear, clear);
      return running;
    };
    if (!state.running) return lookUp();
    const ignore = () => undefined;
    return (state.queued ??= state.running.then(ignore, ignore).then(() => {
      state.queued = undefined;
      return lookUp();
    }));
  }

  /** A partition's history: of the hub's own topic, or of one of its live sources. */
  history(partition: number, liveSource?: string): PartitionHistory {
    return liveSource === undefined ? this.histories[partition]! : this.liveSources.get(liveSource)!.histories[partition]!;
  }

  /** Records of a partition of a live source: each goes at once to every subscriber of its channel. */
  onLiveRecords(topic: string, partition: number, records: FeedRecord[]): void {
    const source = this.liveSources.get(topic)!;
    const h = source.histories[partition]!;
    for (const r of records) {
      if (r.offset < h.next) continue; // seen already (a re-fetch)
      h.add(r.offset, undefined);
      const e = source.feed.entry(partition, r);
      if (!e || r.offset < source.liveFrom[partition]!) continue;
      this.stats.fannedOut(partition, r.offset, e.at);
      for (const client of this.listeners.get(e.key)?.all.keys() ?? []) {
        if (client.closed) continue;
        if (client.socket.bufferedAmount() > this.maxBackpressure) this.closeSlow(client);
        else this.sendEntries(client, UNORDERED, [{ offset: r.offset, channel: e.key, json: e.json }], false);
      }
    }
  }

  /** Records of one partition, in offset order, as the tail consumer reads them, with the end of
   *  the partition the broker reported along (the fanout may be behind it). */
  onRecords(partition: number, records: FeedRecord[], highWatermark?: number): void {
    const h = this.histories[partition]!;
    if (highWatermark !== undefined) this.ends[partition] = Math.max(this.ends[partition]!, highWatermark);
    const fresh = new Map<string, Entry[]>();
    for (const r of records) {
      if (r.offset < h.next) continue; // seen already (a re-fetch)
      const e = this.feed.entry(partition, r);
      if (!e) {
        h.add(r.offset, undefined);
        continue;
      }
      const entry: Entry = { offset: r.offset, channel: e.key, json: e.json };
      h.add(r.offset, entry);
      this.stats.fannedOut(partition, r.offset, e.at);
      let list = fresh.get(e.key);
      if (!list) fresh.set(e.key, (list = []));
      list.push(entry);
    }
    for (const [channel, entries] of fresh) {
      const listeners = this.listeners.get(channel);
      if (listeners) this.fanOut(channel, listeners, entries);
    }
  }

  /** Live entries of one channel to its subscribers: published once to each topic in use, sent
   *  one by one to subscriptions that are on none. */
  private fanOut(channel: string, listeners: Listeners, entries: Entry[]): void {
    let published = this.unchecked.get(channel) ?? 0;
    for (const e of entries) published += e.json.length;
    const look = published >= this.maxBackpressure / CHECK_SHARE;
    this.unchecked.set(channel, look ? 0 : published);
    // What is published is queued by uWS without a check: a socket over the limit is closed
    // before it is handed more (uWS would skip it silently past its own, far higher, limit).
    if (look) {
      for (const [client, sub] of listeners.all) {
        if (sub.topic !== undefined && !client.closed && client.socket.bufferedAmount() > this.maxBackpressure) this.closeSlow(client);
      }
    }
    /** Subscriptions that have just reached this fanout's reading: they join their topic once
     *  these entries are published, or the topic would hand them the entries again. */
    let joining: [Client, Subscription][] | undefined;
    for (const [client, sub] of listeners.direct) {
      this.deliver(client, sub, entries);
      if (this.publisher && !client.closed && this.levelWithHistory(sub)) (joining ??= []).push([client, sub]);
    }
    if (this.publisher) this.publish(this.publisher, channel, entries);
    for (const [client, sub] of joining ?? []) this.joinTopic(client, sub);
  }

  /** To the sockets on the channel's topics (uWS counts them; a closed one has left them). */
  private publish(publisher: Publisher, channel: string, entries: Entry[]): void {
    const singles = singlesTopic(channel);
    const onSingles = publisher.subscribers(singles);
    if (onSingles > 0) {
      for (const e of entries) publisher.publish(singles, e.json);
      this.stats.delivered(entries.length * onSingles);
    }
    const batches = batchTopic(channel);
    const onBatches = publisher.subscribers(batches);
    if (onBatches > 0) {
      for (let i = 0; i < entries.length; i += BATCH_MAX) {
        const group = entries.slice(i, i + BATCH_MAX);
        publisher.publish(batches, group.length === 1 ? group[0]!.json : batchMessage(channel, group));
      }
      this.stats.delivered(entries.length * onBatches);
    }
  }

  /** A subscription from now on live: on its publisher topic when the socket can join one. All in
   *  the tick that sent the last entry it had, so nothing published falls between the two. */
  private goLive(client: Client, sub: Subscription): void {
    sub.live = true;
    // Ahead of what this fanout has read (its history still warming up after a start, or behind
    // the fanout that handed the position out): a topic carries every record published, older
    // ones too, so it is served one by one, past its position, until the records reach it.
    if (this.levelWithHistory(sub)) this.joinTopic(client, sub);
    const listeners = this.listeners.get(sub.channel);
    if (sub.topic === undefined && listeners?.all.get(client) === sub) listeners.direct.set(client, sub);
  }

  /** True when every record this fanout reads from now on comes after the subscription's position. */
  private levelWithHistory(sub: Subscription): boolean {
    return sub.partition < 0 || sub.after < this.histories[sub.partition]!.next;
  }

  private joinTopic(client: Client, sub: Subscription): void {
    if (!this.publisher || !client.socket.subscribe || client.closed) return;
    sub.topic = sub.batch ? batchTopic(sub.channel) : singlesTopic(sub.channel);
    client.socket.subscribe(sub.topic);
    this.listeners.get(sub.channel)?.direct.delete(client);
  }

  private deliver(client: Client, sub: Subscription, entries: Entry[]): void {
    if (client.closed) return;
    if (client.socket.bufferedAmount() > this.maxBackpressure) return this.closeSlow(client);
    this.sendEntries(client, sub, entries, false);
  }

  /**
   * Sends the entries the subscription has not had yet, in one cork. With `pace` it stops once the
   * socket buffer is half full (catch-up); a send uWS drops closes the client. True when all went.
   */
  private sendEntries(client: Client, sub: Subscription, entries: Entry[], pace: boolean): boolean {
    const { socket } = client;
    // Offsets order a subscription within its one partition; one spanning partitions is live only,
    // and every entry reaches it once (records are de-duplicated by offset before fan-out).
    const ordered = sub.partition >= 0;
    const limit = sub.batch ? BATCH_MAX : 1;
    let i = 0;
    let sent = 0;
    let dropped = false;
    let group: Entry[] = [];
    /** Sends the group as one frame: a batch frame when it holds more than one entry. */
    const flush = (): boolean => {
      if (group.length === 0) return true;
      const message = group.length === 1 ? group[0]!.json : batchMessage(sub.channel, group);
      if (socket.send(message) === 2) return !(dropped = true);
      if (ordered) sub.after = group[group.length - 1]!.offset;
      sent += group.length;
      group = [];
      return true;
    };
    socket.cork(() => {
      for (; i < entries.length; i++) {
        const e = entries[i]!;
        if (ordered && e.offset <= sub.after) continue;
        if (group.length === 0 && pace && socket.bufferedAmount() > this.maxBackpressure / 2) break;
        group.push(e);
        if (group.length === limit && !flush()) break;
      }
      if (!dropped) flush();
    });
    this.stats.delivered(sent);
    if (dropped) this.closeSlow(client);
    return !dropped && i === entries.length;
  }

  private closeSlow(client: Client): void {
    if (client.closed) return;
    this.stats.slowClosed();
    client.closed = true;
    client.socket.end(CLOSE_SLOW_CONSUMER, CLOSE_SLOW_REASON);
  }

  private send(client: Client, message: string): void {
    if (!client.closed) client.socket.cork(() => client.socket.send(message));
  }

  /** Registers a subscription, replacing one the client had for the same channel. */
  private listen(client: Client, sub: Subscription): void {
    this.unsubscribe(client, sub.channel, false);
    this.subs(client).set(sub.channel, sub);
    client.subscriptions++;
    let listeners = this.listeners.get(sub.channel);
    if (!listeners) this.listeners.set(sub.channel, (listeners = { all: new Map(), direct: new Map() }));
    listeners.all.set(client, sub);
  }

  /** `batch`: the client takes batch frames (several waiting captions in one frame). */
  subscribe(client: Client, channel: string, since?: string, batch = false): void {
    const invalid = this.feed.invalidKey(channel);
    if (invalid) return this.send(client, errorMessage('invalid_channel', refusal('channel', invalid), String(channel)));
    if (this.feed.spansPartitions) {
      // Live only: every record from now on, from whichever partition it comes.
      const sub: Subscription = { channel, partition: -1, after: -1, live: false, batch };
      this.listen(client, sub);
      this.send(client, subscribedMessage(channel, '', false, batch));
      this.goLive(client, sub);
      return;
    }
    const partition = partitionFor(this.feed.partitionKey(channel), this.partitions);
    let after: number;
    if (since !== undefined) {
      const p = parsePosition(since);
      if (!p)
        return this.send(
          client,
          errorMessage('invalid_position', refusal('since', 'must be a position "partition:offset" as received'), channel),
        );
      if (p.partition !== partition)
        return this.send(client, errorMessage('invalid_position', refusal('since', 'is a position of another channel'), channel));
      after = p.offset;
    } else {
      // From now on: while the history is still warming up, "now" is the end the log had at start.
      after = Math.max(this.histories[partition]!.next, this.liveFrom[partition] ?? 0) - 1;
    }
    if (!this.subs(client).has(channel) && client.subscriptions >= MAX_SUBSCRIPTIONS) {
      return this.send(
        client,
        errorMessage(
          'too_many_subscriptions',
          refusal('channel', `one too many: at most ${MAX_SUBSCRIPTIONS} channels per connection`),
          channel,
        ),
      );
    }
    let recovered = since !== undefined;
    const h = this.histories[partition]!;
    if (!this.archive && !h.covers(after)) {
      after = h.start - 1; // what the client missed is gone: say so, and give it what is here
      recovered = false;
    }
    const sub: Subscription = { channel, partition, after, live: false, batch };
    this.listen(client, sub);
    // A position at or past the end would be answered "recovered" and then never served.
    if (since !== undefined && after >= this.knownEnd(partition)) return void this.startWithinLog(client, sub);
    this.start(client, sub, recovered);
  }

  private start(client: Client, sub: Subscription, recovered: boolean): void {
    const position = formatPosition({ partition: sub.partition, offset: sub.after });
    this.send(client, subscribedMessage(sub.channel, position, recovered, sub.batch));
    void this.catchUp(client, sub);
  }

  /**
   * Starts a subscription whose `since` is past every end this hub has seen, once Kafka says the log
   * has it (this fanout may be behind another that handed out the position), else refuses it.
   * Until then it is held, not live: records that arrive meanwhile are caught up after.
   */
  private async startWithinLog(client: Client, sub: Subscription): Promise<void> {
    const current = () => !client.closed && this.subs(client).get(sub.channel) === sub;
    let failure: Error | undefined;
    if (this.logEnd) {
      try {
        await this.freshEnd(sub.partition, this.logEnd); // raises the known end
      } catch (err) {
        failure = err as Error;
      }
    }
    if (!current()) return;
    const end = this.knownEnd(sub.partition);
    if (sub.after < end) return this.start(client, sub, true);
    this.unsubscribe(client, sub.channel, false);
    if (failure) {
      return this.send(
        client,
        errorMessage(
          'unavailable',
          { message: `could not check since against the end of the log (${failure.message}); subscribe again with the same since` },
          sub.channel,
        ),
      );
    }
    const since = formatPosition({ partition: sub.partition, offset: sub.after });
    const holds = end > 0 ? `its last offset is ${end - 1}` : 'it has no records yet';
    const problem =
      `${since} is beyond the end of the log (${holds} on partition ${sub.partition}); ` +
      'resume from a position you received, or subscribe without since';
    this.send(client, errorMessage('invalid_position', refusal('since', problem), sub.channel));
  }

  /**
   * Sends what the client missed, paced by its socket buffer: from the read model while the
   * partition history no longer holds it, then from the history. The switch to live happens in
   * the same tick as the last history entry is sent, so nothing falls between the two.
   */
  private async catchUp(client: Client, sub: Subscription): Promise<void> {
    const current = () => !client.closed && this.subs(client).get(sub.channel) === sub;
    // The deadline is for making no progress, not for the whole catch-up: days of captions take a while.
    let deadline = Date.now() + this.recoveryTimeoutMs;
    let progress = sub.after;
    try {
      while (current()) {
        if (sub.after !== progress) {
          progress = sub.after;
          deadline = Date.now() + this.recoveryTimeoutMs;
        }
        const h = this.histories[sub.partition]!;
        if (h.covers(sub.after)) {
          if (this.sendEntries(client, sub, h.after(sub.channel, sub.after), true)) {
            sub.after = Math.max(sub.after, h.next - 1);
            this.goLive(client, sub);
            return;
          }
        } else {
          const { rows, appliedUpTo } = await this.archive!.after(sub.channel, sub.partition, sub.after, ARCHIVE_PAGE);
          if (!current()) return;
          const all = this.sendEntries(client, sub, rows, true);
          // Every row of this channel that the read model had applied is sent: skip to its end.
          if (all && rows.length < ARCHIVE_PAGE) {
            sub.after = Math.max(sub.after, appliedUpTo - 1);
            if (!this.histories[sub.partition]!.covers(sub.after)) {
              if (Date.now() > deadline) throw new Error('the read model is too far behind');
              await sleep(100);
            }
          }
        }
        await this.drained(client, current, deadline);
      }
    } catch (err) {
      if (!current()) return;
      this.unsubscribe(client, sub.channel, false);
      this.send(
        client,
        errorMessage(
          'unavailable',
          { message: `could not recover the missed captions (${(err as Error).message}); subscribe again with the same since` },
          sub.channel,
        ),
      );
    }
  }

  /** Waits for a catching-up client to drain its socket; one that does not is a slow consumer. */
  private async drained(client: Client, current: () => boolean, deadline: number): Promise<void> {
    while (current() && client.socket.bufferedAmount() > this.maxBackpressure / 2) {
      if (Date.now() > deadline) return this.closeSlow(client);
      await sleep(5);
    }
  }

  unsubscribe(client: Client, channel: string, confirm = true): void {
    const sub = this.subs(client).get(channel);
    if (sub && this.subs(client).delete(channel)) {
      client.subscriptions--;
      if (sub.topic !== undefined) client.socket.unsubscribe?.(sub.topic);
      const listeners = this.listeners.get(channel);
      listeners?.all.delete(client);
      listeners?.direct.delete(client);
      if (listeners?.all.size === 0) {
        this.listeners.delete(channel);
        this.unchecked.delete(channel);
      }
    }
    if (confirm) this.send(client, unsubscribedMessage(channel));
  }

  disconnect(client: Client): void {
    client.closed = true;
    for (const channel of [...this.subs(client).keys()]) this.unsubscribe(client, channel, false);
  }

  subscriptionCount(): number {
    let n = 0;
    for (const l of this.listeners.values()) n += l.all.size;
    return n;
  }
}
