// The content-addressed blob store: a local directory. Finished files live at
// sha256/<aa>/<bb>/<hash>, so the same bytes are stored once and an event's sha256 is the
// reference (claim check). Unfinished work has its own places, removed as a whole:
// uploads/<uploadId>/ for the bytes of an unfinished upload, jobs/<jobId>/ for an encode's
// intermediates. A file joins sha256/ only once whole (a hard link), so a hash never names half a file.
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { link, mkdir, open, rm, stat, truncate, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';

const SHA256 = /^[0-9a-f]{64}$/;
const WRITE_BATCH = 1024 * 1024;
const SYNC_EVERY = 4 * 1024 * 1024;

/** Where written bytes go to be hashed. `take` (optional) is handed a buffer the writer no longer uses. */
export interface HashSink {
  update(data: Buffer): void;
  take?(data: Buffer): void;
}

export class BlobStore {
  readonly root: string;

  constructor(
    root: string,
    private readonly fsync = true,
  ) {
    this.root = resolve(root);
  }

  pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return join(this.root, 'sha256', sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  uploadDir(uploadId: string): string {
    return join(this.root, 'uploads', safeName(uploadId));
  }

  /** An unfinished upload's bytes, accepted and not: one file, written in place. */
  uploadData(uploadId: string): string {
    return join(this.uploadDir(uploadId), 'data');
  }

  jobDir(jobId: string): string {
    return join(this.root, 'jobs', safeName(jobId));
  }

  async size(sha256: string): Promise<number | undefined> {
    return stat(this.pathOf(sha256)).then(
      (s) => s.size,
      () => undefined,
    );
  }

  /**
   * Writes a stream into a file from `offset` on (the file is cut there first, created if missing),
   * feeding every byte to `hashes` on the way, and makes it durable. Returns the bytes written.
   */
  async writeAt(path: string, offset: number, source: Readable, hashes: HashSink[]): Promise<number> {
    await mkdir(dirname(path), { recursive: true });
    const fh = await open(path, constants.O_RDWR | constants.O_CREAT);
    let size = 0;
    try {
      await fh.truncate(offset);
      // Gathered into writes of about a megabyte (request bodies arrive in much smaller pieces), one
      // in flight while the next is read. A written batch then goes to the hashes whole: one hand-over
      // per megabyte rather than per piece, and the only hash may take the buffer itself.
      let batch: Buffer[] = [];
      let batched = 0;
      let writing: Promise<unknown> = Promise.resolve();
      // The disk is asked to catch up with what is written every few megabytes while the rest
      // arrives (never waited for while reading), so the sync before the answer has little left.
      let syncing: Promise<unknown> | undefined;
      let unsynced = 0;
      const syncSoon = () => {
        if (!this.fsync || syncing || unsynced < SYNC_EVERY) return;
        unsynced = 0;
        syncing = fh.datasync().finally(() => (syncing = undefined));
        // Awaited (and its error seen) before the answer; never left to reject unheard.
        syncing.catch(() => undefined);
      };
      const flush = async () => {
        await writing;
        syncSoon();
        if (!batched) return;
        const own = batch.length > 1;
        const buf = own ? Buffer.concat(batch, batched) : batch[0]!;
        const at = offset + size - batched;
        const length = batched;
        batch = [];
        batched = 0;
        writing = writeAll(fh, buf, at).then(() => {
          unsynced += length;
          handOver(hashes, buf, own);
        });
      };
      try {
        for await (const chunk of source) {
          const buf = chunk as Buffer;
          size += buf.length;
          batch.push(buf);
          batched += buf.length;
          if (batched >= WRITE_BATCH) await flush();
        }
        await flush();
        await writing;
        // The last sync goes out at once, alongside one still under way (the disk serves both).
        await Promise.all([syncing, this.fsync ? fh.datasync() : undefined]);
      } catch (err) {
        // Nothing may still be writing to the file when it is closed (and maybe cut by the caller).
        await Promise.allSettled([writing, syncing]);
        throw err;
      }
      return size;
    } finally {
      await fh.close();
    }
  }

  /** Cuts a file back to `size` bytes (nothing when it is missing). */
  async truncate(path: string, size: number): Promise<void> {
    await truncate(path, size).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** Reads a file once: the sha256 of the whole, and of each range asked for (in order, back to back). */
  async hashRanges(path: string, lengths: number[]): Promise<{ sha256: string; ranges: string[] }> {
    const whole = createHash('sha256');
    const ranges: string[] = [];
    let i = 0;
    let left = lengths[0] ?? 0;
    let part = createHash('sha256');
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
      let buf = chunk as Buffer;
      whole.update(buf);
      while (buf.length && i < lengths.length) {
        const take = Math.min(left, buf.length);
        part.update(buf.subarray(0, take));
        buf = buf.subarray(take);
        left -= take;
        if (left === 0) {
          ranges.push(part.digest('hex'));
          part = createHash('sha256');
          left = lengths[++i] ?? 0;
        }
      }
    }
    return { sha256: whole.digest('hex'), ranges };
  }

  /** Moves a finished file to where its hash says; if those bytes are stored already, drops it. */
  async adopt(file: string, sha256: string): Promise<string> {
    const dest = this.pathOf(sha256);
    await mkdir(dirname(dest), { recursive: true });
    try {
      // link fails if the blob exists, so an existing blob is never replaced under a reader.
      await link(file, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    await unlink(file);
    return dest;
  }

  /** The sha256 of a file, read once. */
  async hashFile(path: string): Promise<string> {
    const sha = createHash('sha256');
    for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) sha.update(chunk as Buffer);
    return sha.digest('hex');
  }

  read(sha256: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.pathOf(sha256), range);
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }

  async removeDir(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Ids come from clients: never let one become a path outside its folder. */
function safeName(id: string): string {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(id) || id.startsWith('.')) throw new Error(`unsafe name for the blob store: ${JSON.stringify(id)}`);
  return id;
}

/** Writes all of `buf` at `position` (a write may take less than asked). */
async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  for (let done = 0; done < buf.length;) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    done += bytesWritten;
  }
}

/** Gives written bytes to the hashes; a buffer of the writer's own making may be taken as it is. */
function handOver(hashes: HashSink[], buf: Buffer, own: boolean): void {
  // Only a buffer that is all of its memory may go: a slice of a pool would take its neighbours along.
  const whole = own && buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength;
  if (whole && hashes.length === 1 && hashes[0]!.take) return hashes[0]!.take(buf);
  for (const h of hashes) h.update(buf);
}
