// WriteSlices against a model of uWS pub/sub: whatever the hub does (publishes, joins, leaves, direct
// sends, closes) and however the slices' turns fall between, every socket reads exactly what it
// would have read had each publish, join and leave been done at once: the same messages, in order,
// direct sends in their place; and `subscribers` always says how many sockets a publish would reach.
import { describe, expect, it } from 'vitest';
import { WriteSlices, sliceTopic, type Member } from '../../apps/fanout/slices.ts';
import { seededRandom } from '../support/seeded-random.ts';

/** uWS as far as the slices use it: a publish reaches the sockets on the topic at that moment. */
class FakeUws {
  readonly topics = new Map<string, Set<Sock>>();
  publish(topic: string, message: string): void {
    for (const s of this.topics.get(topic) ?? []) s.read.push(message);
  }
}

/** A socket as the server wraps it (apps/fanout/server.ts's UwsSocket), over the fake. */
class Sock implements Member {
  gone = false;
  readonly read: string[] = [];
  /** Topics as the hub sees them (joined, not yet left). */
  readonly on = new Set<string>();
  constructor(
    private readonly uws: FakeUws,
    private readonly slices: WriteSlices,
    readonly slice: number,
  ) {}
  join(topic: string): void {
    let set = this.uws.topics.get(topic);
    if (!set) this.uws.topics.set(topic, (set = new Set()));
    set.add(this);
  }
  leave(topic: string): void {
    this.uws.topics.get(topic)?.delete(this);
  }
  subscribe(topic: string): void {
    this.on.add(topic);
    this.slices.join(this, this.slice, topic);
  }
  unsubscribe(topic: string): void {
    this.on.delete(topic);
    this.slices.leave(this, this.slice, topic);
  }
  send(message: string): void {
    this.slices.flush(this.slice);
    this.read.push(message);
  }
  /** uWS closes it and takes it off its topics; the hub then leaves each topic it had joined. */
  close(): void {
    this.gone = true;
    for (const set of this.uws.topics.values()) set.delete(this);
    for (const topic of [...this.on]) this.unsubscribe(topic);
  }
}

/** The same socket with everything done at once: what each socket must end up having read. */
class Expected {
  readonly read: string[] = [];
  readonly on = new Set<string>();
  closed = false;
}

const TOPICS = ['news', 'news#batch', 'sports', 'sports#batch', 'user:7'];

function run(seed: number, count: number, steps: number, writesPerTurn: number) {
  const rnd = seededRandom(seed);
  const uws = new FakeUws();
  const turns: (() => void)[] = [];
  const slices = new WriteSlices(uws, count, (turn) => turns.push(turn), writesPerTurn);
  const socks: [Sock, Expected][] = [];
  const open = () => socks.push([new Sock(uws, slices, slices.assign()), new Expected()]);
  for (let i = 0; i < 6; i++) open();
  const live = () => socks.filter(([s]) => !s.gone);
  let n = 0;
  for (let step = 0; step < steps; step++) {
    const r = rnd.next();
    const pick = live();
    if (r < 0.3) {
      const topic = TOPICS[rnd.int(TOPICS.length)]!;
      const message = `m${++n}`;
      const reached = socks.filter(([, e]) => !e.closed && e.on.has(topic)).length;
      expect(slices.subscribers(topic)).toBe(reached);
      slices.publish(topic, message);
      for (const [, e] of socks) if (!e.closed && e.on.has(topic)) e.read.push(message);
    } else if (r < 0.5 && pick.length) {
      const [s, e] = pick[rnd.int(pick.length)]!;
      const topic = TOPICS[rnd.int(TOPICS.length)]!;
      if (e.on.has(topic)) {
        s.unsubscribe(topic);
        e.on.delete(topic);
      } else {
        s.subscribe(topic);
        e.on.add(topic);
      }
    } else if (r < 0.6 && pick.length) {
      const [s, e] = pick[rnd.int(pick.length)]!;
      const message = `direct${++n}`;
      s.send(message);
      e.read.push(message);
    } else if (r < 0.65 && pick.length) {
      const [s, e] = pick[rnd.int(pick.length)]!;
      s.close();
      e.closed = true;
    } else if (r < 0.7) {
      open();
    } else {
      // Some loop turns go by (none, one, or several slices' turns).
      for (let k = rnd.int(3); k > 0 && turns.length; k--) turns.shift()!();
    }
  }
  while (turns.length) turns.shift()!();
  for (const [i, [s, e]] of socks.entries()) {
    // A closed socket loses what was not written yet, as it would have anyway (its client resumes with since).
    if (e.closed) expect(s.read, `closed socket ${i} (seed ${seed})`).toEqual(e.read.slice(0, s.read.length));
    else expect(s.read, `socket ${i} (seed ${seed})`).toEqual(e.read);
  }
  for (const topic of TOPICS) {
    const on = socks.filter(([, e]) => !e.closed && e.on.has(topic)).length;
    expect(slices.subscribers(topic)).toBe(on);
    // Once every turn has run, uWS holds each open socket on its slice's topic, and nobody else.
    let physical = 0;
    for (let k = 0; k < count; k++) physical += uws.topics.get(sliceTopic(topic, k, count))?.size ?? 0;
    expect(physical).toBe(on);
  }
}

describe('WriteSlices', () => {
  for (const count of [1, 2, 5]) {
    it(`gives every socket what publishing at once would, in order (${count} slice${count > 1 ? 's' : ''}, 200 seeds)`, () => {
      // Budgets from none (every publish logged, one slice a turn) to more than the sockets.
      for (let seed = 1; seed <= 200; seed++) run(seed * 7919 + count, count, 400, [0, 1, 3, 500][seed % 4]!);
    });
  }

  /** Three slices with a socket on 'news' in each, and what reaches uWS. */
  function threeSlices(writesPerTurn: number) {
    const published: string[] = [];
    const turns: (() => void)[] = [];
    const slices = new WriteSlices({ publish: (topic) => published.push(topic) }, 3, (t) => turns.push(t), writesPerTurn);
    const member: Member = { gone: false, join: () => undefined, leave: () => undefined };
    for (let slice = 0; slice < 3; slice++) slices.join(member, slice, 'news');
    expect(turns).toEqual([]); // done at once: nothing was logged, no turn asked for
    return { published, turns, slices };
  }

  it('writes a publish at once, to every slice, while nothing is logged and the turn has writes to spare', () => {
    const { published, turns, slices } = threeSlices(3);
    slices.publish('news', 'a');
    expect(published).toEqual(['news#0', 'news#1', 'news#2']);
    // The turn's budget spent: the next is logged, and written a slice at a time.
    slices.publish('news', 'b');
    expect(published).toHaveLength(3);
    expect(turns).toHaveLength(2); // the budget's reset, then the slices' turn
    turns.shift()!();
    turns.shift()!();
    expect(published).toEqual(['news#0', 'news#1', 'news#2', 'news#0', 'news#1', 'news#2']);
    expect(turns).toHaveLength(0);
  });

  it('over the budget, writes one slice a turn, in order, and stops when every log is empty', () => {
    const { published, turns, slices } = threeSlices(0);
    slices.publish('news', 'a');
    expect(published).toEqual([]); // nothing before its turn
    expect(turns).toHaveLength(1);
    turns.shift()!();
    expect(published).toEqual(['news#0']);
    turns.shift()!();
    turns.shift()!();
    expect(published).toEqual(['news#0', 'news#1', 'news#2']);
    expect(turns).toHaveLength(0);
  });

  it('refuses a count that is not a whole number of at least 1', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => new WriteSlices({ publish: () => undefined }, bad)).toThrow(/slices/);
  });
});
