// Whether Kafka answers. Every broker connection of the process is watched: one closing (a broker
// killed, restarted or cut off) voids what was known at once, so the next question goes to a
// broker instead of trusting an answer from before. A probe of its own, without retries, asks: a
// refused connection is an answer at once, silence one after PROBE_TIMEOUT_MS. Any answer, like an
// acknowledged append, counts for FRESH_MS. So a broker that goes away is known in well under a
// second; one that merely falls silent, within FRESH_MS + PROBE_TIMEOUT_MS. With several brokers,
// the probe asks each of them at once: Kafka answers while any broker does (a lost broker's
// partitions move to the others), and is unreachable only when none does.
import net from 'node:net';
import tls from 'node:tls';
import { Kafka, logLevel, type Admin, type ISocketFactory } from 'kafkajs';

export class KafkaUnavailable extends Error {}

/** How long an answer (a probe's, or an acknowledged append) stands for the present. */
const FRESH_MS = 500;
/** A probe that gets no answer in this time counts as Kafka unreachable. */
const PROBE_TIMEOUT_MS = 900;

export class KafkaReachability {
  /** Bumped whenever a broker connection closes: answers from an older epoch are not kept. */
  private epoch = 0;
  private known: { ok: boolean; until: number } = { ok: false, until: 0 };
  private probing: Promise<boolean> | undefined;
  /** Requests in flight that want to hear at once when Kafka is found unreachable. */
  private readonly lossWatchers = new Set<(e: KafkaUnavailable) => void>();
  /** One client per broker: a client given them all connects to one at random and, without
   *  retries, fails when that one is down. */
  private readonly probeClients: Kafka[];
  private readonly probeAdmins: (Promise<Admin> | undefined)[];

  constructor(brokers: string[]) {
    this.probeClients = brokers.map((broker) => this.probeClient(broker));
    this.probeAdmins = brokers.map(() => undefined);
  }

  private probeClient(broker: string): Kafka {
    return new Kafka({
      clientId: 'castlog-probe',
      brokers: [broker],
      // Longer than PROBE_TIMEOUT_MS, so an error from the client is a refusal or a broken
      // connection, and silence is told by our own timeout below.
      connectionTimeout: 3 * PROBE_TIMEOUT_MS,
      requestTimeout: 3 * PROBE_TIMEOUT_MS,
      retry: { retries: 0 },
      logLevel: logLevel.NOTHING,
      socketFactory: this.socketFactory,
    });
  }

  /** kafkajs's socket factory, plus a watch on each connection. Give it to every client. */
  readonly socketFactory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
    const socket = ssl
      ? tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }), ...(typeof ssl === 'object' ? ssl : {}) }, onConnect)
      : net.connect({ host, port }, onConnect);
    socket.setKeepAlive(true, 60_000);
    // A close we asked for (a client stopping) also lands here: that costs one probe, no more.
    socket.once('close', () => this.connectionClosed());
    return socket;
  };

  /** The current epoch, to hand back to acknowledged(). */
  get now(): number {
    return this.epoch;
  }

  private connectionClosed(): void {
    this.epoch++;
    if (this.known.ok) this.known = { ok: false, until: 0 };
    // Someone is waiting on Kafka: find out now whether it is gone, not when their time runs out.
    if (this.lossWatchers.size) void this.check();
  }

  /**
   * `lost` rejects with KafkaUnavailable as soon as Kafka is found unreachable, until done() is
   * called: a request in flight races it so its caller hears in a second, not after retries.
   */
  watchForLoss(): { lost: Promise<never>; done: () => void } {
    let watcher!: (e: KafkaUnavailable) => void;
    const lost = new Promise<never>((_, reject) => (watcher = reject));
    lost.catch(() => undefined);
    this.lossWatchers.add(watcher);
    return { lost, done: () => this.lossWatchers.delete(watcher) };
  }

  /** Records an answer. Requests in flight are told only of a sure loss (a refused or broken
   *  connection): a probe merely slow on a busy machine must not fail appends that will succeed. */
  private found(ok: boolean, sure = !ok): void {
    this.known = { ok, until: Date.now() + FRESH_MS };
    if (sure) for (const w of this.lossWatchers) w(new KafkaUnavailable('Kafka cannot be reached'));
  }

  /** Kafka acknowledged a request sent at `epoch`: it answers, unless a connection closed since. */
  acknowledged(epoch: number): void {
    if (epoch === this.epoch) this.known = { ok: true, until: Date.now() + FRESH_MS };
  }

  /** A request failed in a way that says Kafka cannot be reached (not a mere timeout). */
  unreachable(): void {
    this.found(false);
  }

  /** True when Kafka was found unreachable in the last FRESH_MS. */
  get knownDown(): boolean {
    return !this.known.ok && Date.now() < this.known.until;
  }

  /** Whether Kafka answers now; many callers at once share one probe. */
  async check(): Promise<boolean> {
    if (Date.now() < this.known.until) return this.known.ok;
    this.probing ??= this.probe().finally(() => (this.probing = undefined));
    return this.probing;
  }

  private async probe(): Promise<boolean> {
    const epoch = this.epoch;
    const answers = await Promise.allSettled(this.probeClients.map((_, i) => this.probeBroker(i)));
    const ok = answers.some((a) => a.status === 'fulfilled');
    // Sure of a loss only when every broker refused; one merely slow may still answer.
    const slow = answers.some((a) => a.status === 'rejected' && a.reason instanceof KafkaUnavailable);
    // An answer that raced a closing connection is returned but not kept: the next asks again.
    if (!ok || epoch === this.epoch) this.found(ok, !ok && !slow);
    return ok;
  }

  private async probeBroker(i: number): Promise<void> {
    try {
      const deadline = Date.now() + PROBE_TIMEOUT_MS;
      const admin = await withTimeout(this.connectedProbe(i), PROBE_TIMEOUT_MS);
      await withTimeout(admin.describeCluster(), Math.max(1, deadline - Date.now()));
    } catch (err) {
      if (!(err instanceof KafkaUnavailable)) {
        // Start from a fresh connection next time: a broken one may be cached in the client. A
        // slow answer leaves it: the request may still complete.
        const admin = this.probeAdmins[i];
        this.probeAdmins[i] = undefined;
        void admin?.then((a) => a.disconnect()).catch(() => undefined);
      }
      throw err;
    }
  }

  private connectedProbe(i: number): Promise<Admin> {
    let ready = this.probeAdmins[i];
    if (!ready) {
      const admin = this.probeClients[i]!.admin({ retry: { retries: 0 } });
      const connecting = admin.connect().then(() => admin);
      connecting.catch(() => {
        if (this.probeAdmins[i] === connecting) this.probeAdmins[i] = undefined;
      });
      ready = this.probeAdmins[i] = connecting;
    }
    return ready;
  }

  async close(): Promise<void> {
    const admins = this.probeAdmins.splice(0, this.probeAdmins.length, ...this.probeAdmins.map(() => undefined));
    await Promise.all(admins.map((a) => a?.then((x) => x.disconnect()).catch(() => undefined)));
  }
}

/** `p`, or KafkaUnavailable when it has not settled within `ms`. An answer that arrived while this
 *  process's event loop was busy (a cold start, a burst) is not silence: the timer runs before
 *  the loop reads sockets, so the verdict waits for one pass of I/O (setImmediate) first. */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => setImmediate(() => reject(new KafkaUnavailable(`Kafka did not answer within ${ms} ms`))), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}
