// A round of live writes in slices. Every socket needs a write per round, and on a busy fanout a
// round over every socket takes long (10,000 sockets: ~190 ms on this 2-core box). Written at once,
// a caption that arrives just after the round's fetch waits for the whole round to be written, then
// for its socket's turn in the next: up to two rounds. Here each socket belongs to one of a few
// slices, and one slice is written per loop turn, with fetches between: what a socket is sent was
// fetched shortly before its own write, so a caption waits about one round. It pays where the
// rounds are long (10,000 viewers at 2,000 captions/s: p99 −30% here) and costs where they are short
// (each caption takes a turn per slice to reach them all): FANOUT_WRITE_SLICES, 1 by default.
//
// What the hub publishes is logged per slice and replayed on the slice's turn, in order with the
// joins and leaves of that slice's sockets, so each socket gets exactly what it would have got had
// everything been done at once: a socket that joins a topic after a message was published never
// gets that message from the topic, one that leaves gets what was published before it left.
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

  constructor(
    private readonly pubsub: PubSub,
    readonly count: number,
    /** Runs a slice's turn: the next loop turn (uWS writes what was published at the end of one). */
    private readonly schedule: (turn: () => void) => void = setImmediate,
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
    const op: Op = { kind: PUBLISH, topic, message }; // one for every log: nothing changes it
    for (const log of this.logs) log.push(op);
    this.soon();
  }

  /**
   * What the consumer waits for before it fetches again. All at once: the writes of what was
   * published, so the next fetch brings what arrived while they went out instead of what was there
   * when they began (10,000 viewers: a turn's writes take a fifth of a second, and a caption waited
   * a round longer). In slices: nothing; the next fetch goes out now and comes back between two
   * slices' turns.
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
    if (this.count === 1) return member.join(topic);
    this.logs[slice]!.push({ kind: JOIN, topic, member });
    this.soon();
  }

  /** Leaves a topic; also called for a socket that closed, which uWS took off it already: only
   *  the count drops then. */
  leave(member: Member, slice: number, topic: string): void {
    this.changeMembers(topic, -1);
    if (member.gone) return;
    if (this.count === 1) return member.leave(topic);
    this.logs[slice]!.push({ kind: LEAVE, topic, member });
    this.soon();
  }

  /**
   * Replays a slice's log now. A direct send to a socket calls it first: uWS writes a socket's
   * published messages before a direct send, and what was published before must come first.
   */
  flush(slice: number): void {
    const log = this.logs[slice]!;
    if (log.length === 0) return;
    this.logs[slice] = [];
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

  private soon(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.schedule(() => this.turn());
  }

  /** One slice per turn, in order, skipping empty ones; again next turn while any log holds something. */
  private turn(): void {
    this.scheduled = false;
    for (let i = 0; i < this.count; i++) {
      const slice = (this.next + i) % this.count;
      if (this.logs[slice]!.length === 0) continue;
      this.next = (slice + 1) % this.count;
      this.flush(slice);
      break;
    }
    if (this.logs.some((log) => log.length > 0)) this.soon();
  }
}
