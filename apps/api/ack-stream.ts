// The answer side of an NDJSON ingest stream: one line per input line, in input order, written as
// soon as that line is settled. It holds at most `capacity` unwritten answers and writes only as
// fast as the station reads: when either is full, the reader waits, so it stops reading the body
// and TCP pushes back on the station. Memory per stream stays bounded whatever the station does.
import type { ServerResponse } from 'node:http';

export class AckStream<A> {
  private readonly queue: Promise<A>[] = [];
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

  /** Queues the answer to the next line; resolves once there is room for another. */
  async push(answer: Promise<A>): Promise<void> {
    this.queue.push(answer);
    this.wakeWriter?.();
    while (this.queue.length >= this.capacity && !this.out.destroyed) await new Promise<void>((r) => (this.wakeReader = r));
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
      const answer = await next;
      void this.queue.shift(); // the answer just written
      this.wakeReader?.();
      if (this.out.destroyed) continue; // gone: settle the rest without writing
      if (!this.out.write(`${JSON.stringify(answer)}\n`)) await this.drained();
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
