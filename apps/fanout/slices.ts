// A round of live writes in slices. Every socket needs a write per round, and on a busy fanout a
// round over every socket takes long (10,000 sockets: ~190 ms on this 2-core box). Written at once,
// a caption that arrives just after the round's fetch waits for the whole round to be written, then
// for its socket's turn in the next: up to two rounds. Here each socket belongs to one of a few
// slices, and the slices are written over several loop turns, with fetches between: what a socket
// is sent was fetched shortly before its own write, so a caption waits about one round.
//
// Where the rounds are short, slices would only delay: while nothing is logged and a turn's writes
// stay within budget (FANOUT_WRITES_PER_TURN), a publish goes to every slice at once, and joins and
// leaves are done at once. Past that, what the hub publishes is logged per slice and replayed on the
// slice's turn, in order with the joins and leaves of that slice's sockets, as many slices a turn as
// make the turn's budget — so each socket gets exactly what it would have got had everything been
// done at once: a socket that joins a topic after a message was published never gets that message
// from the topic, one that leaves gets what was published before it left. FANOUT_WRITE_SLICES, 16
// by default.
import { FANOUT_WRITES_PER_TURN } from '../../infra/config.ts';
import type { Publisher } from './hub.ts';

/** uWS pub/sub, as the slices drive it. */
export interface PubSub {
  publish(topic: string, message: string): void;
}

/** A socket's own topic membership (uWS ws.subscribe / ws.unsubscribe). */
export interface Member {
  /** Closed: its logged joins and leaves are skipped (uWS has let go of it). */
  readonly gone: boolean;
  join(topic: string): void;
  leave(topic: string): void;
}

const PUBLISH = 0;
const JOIN = 1;
const LEAVE = 2;
type Op = { kind: typeof PUBLISH; topic: string; message: string } | { kind: typeof JOIN | typeof LEAVE; topic: string; member: Member };

/** The topic a slice's sockets are on (channel ids and their topics never contain '#' + a digit);
 *  with one slice, the topic itself. */
export const sliceTopic = (topic: string, slice: number, count: number): string => (count === 1 ? topic : `${topic}#${slice}`);

/**
 * Resolves once uWS has written what this loop turn published. uWS writes published messages in
 * its own handler at the end of a turn; two turns on, whichever order libuv runs the handlers in,
 * those writes are out.
 */
export const afterWrites = (): Promise<void> => new Promise((done) => setImmediate(() => setImmediate(done)));

export class WriteSlices implements Publisher {
  private logs: Op[][];
  /** Published since the consumer last asked `written()`. */
  private unwritten = false;
  /** Per topic, the sockets on it once every log is replayed (what the hub asks). */
  private readonly members = new Map<string, number>();
  private next = 0;
  private opened = 0;
  private scheduled = false;
  /** Logs holding something: while none does, publishes, joins and leaves are done at once. */
  private waiting = 0;
  /** Writes started at once this turn, and whether the count is to be cleared next turn. */
  private spent = 0;
  private spending = false;

  constructor(
    private readonly pubsub: PubSub,
    readonly count: number,
    /** Runs a slice's turn: the next loop turn (uWS writes what was published at the end of one). */
    private readonly schedule: (turn: () => void) => void = setImmediate,
    private readonly writesPerTurn = FANOUT_WRITES_PER_TURN,
  ) {
    if (!Number.isInteger(count) || count < 1) throw new Error(`slices: ${count} is not a whole number of at least 1`);
    this.logs = Array.from({ length: count }, () => []);
  }

  /** The slice of a new socket: in turn, so slices stay the same size. */
  assign(): number {
    return this.opened++ % this.count;
  }

  publish(topic: string, message: string): void {
    // One slice: everything at once, as uWS pub/sub does by itself.
    if (this.count === 1) {
      this.unwritten = true;
      return this.pubsub.publish(topic, message);
    }
    // Nothing logged and the turn's writes within budget: at once too, to every slice.
    if (this.waiting === 0 && this.spend(this.subscribers(topic))) {
      this.unwritten = true;
      for (let slice = 0; slice < this.count; slice++) this.pubsub.publish(sliceTopic(topic, slice, this.count), message);
      return;
    }
    const op: Op = { kind: PUBLISH, topic, message }; // one for every log: nothing changes it
    for (let slice = 0; slice < this.count; slice++) this.log(slice, op);
  }

  /**
   * What the consumer waits for before it fetches again. What was published at once: its writes,
   * so the next fetch brings what arrived while they went out instead of what was there when they
   * began (10,000 viewers: a turn's writes take a fifth of a second, and a caption waited a round
   * longer). What was logged for the slices' turns: nothing; the next fetch goes out now and comes
   * back between two of them.
   */
  written(): Promise<void> {
    if (!this.unwritten) return Promise.resolve();
    this.unwritten = false;
    return afterWrites();
  }

  subscribers(topic: string): number {
    return this.members.get(topic) ?? 0;
  }

  join(member: Member, slice: number, topic: string): void {
    if (member.gone) return;
    this.changeMembers(topic, 1);
    if (this.waiting === 0) return member.join(sliceTopic(topic, slice, this.count));
    this.log(slice, { kind: JOIN, topic, member });
  }

  /** Leaves a topic; also called for a socket that closed, which uWS took off it already: only
   *  the count drops then. */
  leave(member: Member, slice: number, topic: string): void {
    this.changeMembers(topic, -1);
    if (member.gone) return;
    if (this.waiting === 0) return member.leave(sliceTopic(topic, slice, this.count));
    this.log(slice, { kind: LEAVE, topic, member });
  }

  /**
   * Replays a slice's log now. A direct send to a socket calls it first: uWS writes a socket's
   * published messages before a direct send, and what was published before must come first.
   */
  flush(slice: number): void {
    const log = this.logs[slice]!;
    if (log.length === 0) return;
    this.logs[slice] = [];
    this.waiting--;
    for (const op of log) {
      const topic = sliceTopic(op.topic, slice, this.count);
      if (op.kind === PUBLISH) this.pubsub.publish(topic, op.message);
      else if (!op.member.gone) {
        if (op.kind === JOIN) op.member.join(topic);
        else op.member.leave(topic);
      }
    }
  }

  private changeMembers(topic: string, by: number): void {
    const n = (this.members.get(topic) ?? 0) + by;
    if (n > 0) this.members.set(topic, n);
    else this.members.delete(topic);
  }

  private log(slice: number, op: Op): void {
    const log = this.logs[slice]!;
    if (log.push(op) === 1) this.waiting++;
    this.soon();
  }

  /** Counts `writes` against this turn's budget if they fit it. */
  private spend(writes: number): boolean {
    if (this.spent + writes > this.writesPerTurn) return false;
    this.spent += writes;
    if (!this.spending) {
      this.spending = true;
      this.schedule(() => {
        this.spending = false;
        this.spent = 0;
      });
    }
    return true;
  }

  private soon(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.schedule(() => this.turn());
  }

  /**
   * Slices in order, skipping empty ones, until the writes they start reach the turn's budget (at
   * least one slice a turn); again next turn while any log holds something.
   */
  private turn(): void {
    this.scheduled = false;
    let writes = 0;
    let flushed = false;
    for (let i = 0; i < this.count && (!flushed || writes < this.writesPerTurn); i++) {
      const slice = this.next;
      this.next = (slice + 1) % this.count;
      if (this.logs[slice]!.length === 0) continue;
      writes += this.writesOf(slice);
      this.flush(slice);
      flushed = true;
    }
    if (this.logs.some((log) => log.length > 0)) this.soon();
  }

  /** About how many socket writes replaying a slice's log starts: uWS writes each socket once a
   *  turn, whatever it was published, so each topic counts once, with its share of the sockets. */
  private writesOf(slice: number): number {
    const topics = new Set<string>();
    for (const op of this.logs[slice]!) if (op.kind === PUBLISH) topics.add(op.topic);
    let sockets = 0;
    for (const topic of topics) sockets += this.subscribers(topic);
    return sockets / this.count;
  }
}
