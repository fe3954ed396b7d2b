// Hashing on a thread of its own: an upload's bytes feed two sha256s (the chunk's for its event, the
// whole file's for its address; one alone where the two are the same bytes, a first chunk), and on
// the main thread that would slow every upload down to the speed of the hash. The main thread hands
// each written megabyte over (transferred, not copied) and goes on reading the socket and writing
// the file while the other core hashes.
import { Worker } from 'node:worker_threads';
import type { HashMessage, HashReply } from './hash-worker.ts';

/** A set of hashes on the thread, fed together. */
export interface HashSession {
  readonly id: number;
  update(data: Buffer): void;
  /** As update, but the buffer itself is handed over (it must be all of its memory; the caller lets go of it). */
  take(data: Buffer): void;
  /** The digests of these hashes as they stand, which go on. */
  peek(names: string[]): Promise<Record<string, Buffer>>;
  /** The digests of these hashes (each ends; hashes not named keep going). */
  digest(names: string[]): Promise<Record<string, Buffer>>;
  drop(): void;
}

export class HashThread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly replies = new Map<number, { resolve: (d: Record<string, Buffer>) => void; reject: (e: Error) => void }>();
  /** Called when the thread died: every session it had is gone. */
  onLost: () => void = () => undefined;

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./hash-worker.mjs', import.meta.url));
    worker.unref();
    worker.on('message', (m: HashReply) => {
      const r = this.replies.get(m.reply);
      this.replies.delete(m.reply);
      r?.resolve(Object.fromEntries(Object.entries(m.digests).map(([k, v]) => [k, Buffer.from(v)])));
    });
    const lost = (err: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      for (const r of this.replies.values()) r.reject(err);
      this.replies.clear();
      this.onLost();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`hash thread exited (${code})`)));
    this.worker = worker;
    return worker;
  }

  /**
   * New hashes, named: [name, algorithm]. `fork` adds a copy of a named hash of an earlier session
   * as it stands, under the same name (to go on hashing a file from where that session was).
   */
  start(algorithms: [string, string][], fork?: { session: HashSession; name: string }): HashSession {
    const worker = this.thread();
    const send = (m: HashMessage, transfer?: ArrayBuffer[]) => worker.postMessage(m, transfer);
    const ask = (m: Extract<HashMessage, { op: 'digest' }>) =>
      new Promise<Record<string, Buffer>>((resolve, reject) => {
        const reply = this.nextId++;
        this.replies.set(reply, { resolve, reject });
        send({ ...m, reply });
      });
    const id = this.nextId++;
    send({ op: 'start', id, algorithms, fork: fork && { id: fork.session.id, name: fork.name } });
    return {
      id,
      update: (data) => {
        // A copy of its own, handed over rather than copied again by postMessage.
        const copy = new Uint8Array(data);
        send({ op: 'update', id, data: copy }, [copy.buffer]);
      },
      take: (data) => {
        const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        send({ op: 'update', id, data: view }, [view.buffer as ArrayBuffer]);
      },
      peek: (names) => ask({ op: 'digest', id, names, reply: 0, peek: true }),
      digest: (names) => ask({ op: 'digest', id, names, reply: 0 }),
      drop: () => send({ op: 'drop', id }),
    };
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    await worker?.terminate();
  }
}
