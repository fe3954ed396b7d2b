// The answer side of an NDJSON ingest stream: one line per input line, in input order, written as
// soon as that line is settled. It holds at most `capacity` unwritten answers and writes only as
// fast as the station reads: when either is full, the reader waits, so it stops reading the body
// and TCP pushes back on the station. Memory per stream stays bounded whatever the station does.
import type { ServerResponse } from 'node:http';

/** An answer in the queue; `value` is set once it has settled, so settled ones can be taken together. */
interface Queued<A> {
  promise: Promise<A>;
  settled: boolean;
  value?: A;
}

export class AckStream<A> {
  private readonly queue: Queued<A>[] = [];
  private wakeWriter: (() => void) | undefined;
  private wakeReader: (() => void) | undefined;
  private ended = false;
  private readonly done: Promise<void>;

  constructor(
    private readonly out: ServerResponse,
    private readonly capacity: number,
  ) {
    this.done = this.write();
  }

  /** Queues the answer to the next line; while the queue is full, answers a promise of room for another. */
  push(answer: Promise<A>): Promise<void> | undefined {
    const queued: Queued<A> = { promise: answer, settled: false };
    answer.then(
      (value) => Object.assign(queued, { settled: true, value }),
      () => undefined, // a rejection is met by the writer awaiting it
    );
    this.queue.push(queued);
    this.wakeWriter?.();
    return this.full() ? this.room() : undefined;
  }

  private full(): boolean {
    return this.queue.length >= this.capacity && !this.out.destroyed;
  }

  private async room(): Promise<void> {
    while (this.full()) await new Promise<void>((r) => (this.wakeReader = r));
  }

  /** Writes what is queued, then resolves; nothing may be pushed after. */
  async end(): Promise<void> {
    this.ended = true;
    this.wakeWriter?.();
    await this.done;
  }

  private async write(): Promise<void> {
    for (;;) {
      const next = this.queue[0];
      if (next === undefined) {
        if (this.ended) return;
        await new Promise<void>((r) => (this.wakeWriter = r));
        continue;
      }
      // The head, then every answer behind it that has settled too, in one write: a group commit
      // settles many lines at once, and one chunk for them all costs the station and us one write.
      let text = `${JSON.stringify(await next.promise)}\n`;
      let n = 1;
      for (; n < this.queue.length && this.queue[n]!.settled; n++) text += `${JSON.stringify(this.queue[n]!.value)}\n`;
      this.queue.splice(0, n);
      this.wakeReader?.();
      if (this.out.destroyed) continue; // gone: settle the rest without writing
      if (!this.out.write(text)) await this.drained();
    }
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.out.off('drain', done);
        this.out.off('close', done);
        resolve();
      };
      this.out.once('drain', done);
      this.out.once('close', done);
    });
  }
}
