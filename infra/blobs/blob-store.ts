// The content-addressed blob store: a local directory. Finished files live at
// sha256/<aa>/<bb>/<hash>, so the same bytes are stored once and an event's sha256 is the
// reference (claim check). Unfinished work has its own places, removed as a whole:
// uploads/<uploadId>/ for the chunks of an upload, jobs/<jobId>/ for an encode's intermediates.
// Everything is first written under tmp/ and renamed into place, so a path never names half a file.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { readableFrom } from './readable.ts';

const SHA256 = /^[0-9a-f]{64}$/;

export interface Written {
  path: string;
  size: number;
  sha256: string;
}

export class BlobStore {
  readonly root: string;

  constructor(root: string, private readonly fsync = true) {
    this.root = resolve(root);
  }

  pathOf(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return join(this.root, 'sha256', sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  uploadDir(uploadId: string): string {
    return join(this.root, 'uploads', safeName(uploadId));
  }

  jobDir(jobId: string): string {
    return join(this.root, 'jobs', safeName(jobId));
  }

  /** A fresh path under tmp/ for a file about to be written. */
  async tmpPath(label = 'blob'): Promise<string> {
    const dir = join(this.root, 'tmp');
    await mkdir(dir, { recursive: true });
    return join(dir, `${safeName(label)}.${randomBytes(8).toString('hex')}`);
  }

  async size(sha256: string): Promise<number | undefined> {
    return stat(this.pathOf(sha256)).then((s) => s.size, () => undefined);
  }

  /**
   * Writes a stream to a new tmp file, hashing it on the way (sha256, plus any other algorithm
   * asked for). On a stream error the file is removed and the error rethrown.
   */
  async writeTmp(source: Readable, label: string, extraAlgorithm?: string): Promise<Written & { extra?: Buffer }> {
    const path = await this.tmpPath(label);
    const sha = createHash('sha256');
    const extra = extraAlgorithm && extraAlgorithm !== 'sha256' ? createHash(extraAlgorithm) : undefined;
    const out = createWriteStream(path, { highWaterMark: 1024 * 1024 });
    let size = 0;
    try {
      for await (const chunk of source) {
        const buf = chunk as Buffer;
        sha.update(buf);
        extra?.update(buf);
        size += buf.length;
        if (!out.write(buf)) await new Promise<void>((r, j) => { out.once('drain', r); out.once('error', j); });
      }
      await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
      if (this.fsync) await syncFile(path);
    } catch (err) {
      out.destroy();
      await rm(path, { force: true });
      throw err;
    }
    const digest = sha.digest();
    return { path, size, sha256: digest.toString('hex'), extra: extraAlgorithm === 'sha256' ? digest : extra?.digest() };
  }

  /** Moves a finished tmp file to where its hash says; if those bytes are stored already, drops it. */
  async adopt(tmp: string, sha256: string): Promise<string> {
    const dest = this.pathOf(sha256);
    await mkdir(dirname(dest), { recursive: true });
    try {
      // link fails if the blob exists, so an existing blob is never replaced under a reader.
      await link(tmp, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    await unlink(tmp);
    return dest;
  }

  /** Moves a finished tmp file to a named place (inside uploads/ or jobs/), creating the folder. */
  async place(tmp: string, dest: string): Promise<void> {
    await mkdir(dirname(dest), { recursive: true });
    await rename(tmp, dest);
  }

  /** Concatenates files into one blob, hashing as it goes. */
  async concat(paths: string[], label: string): Promise<Written> {
    async function* all() {
      for (const p of paths) yield* createReadStream(p, { highWaterMark: 1024 * 1024 });
    }
    const w = await this.writeTmp(readableFrom(all()), label);
    await this.adopt(w.path, w.sha256);
    return { ...w, path: this.pathOf(w.sha256) };
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

  async removeFile(path: string): Promise<void> {
    await rm(path, { force: true });
  }

  async removeDir(dir: string): Promise<void> {
    await rm(dir, { recursive: true, force: true });
  }

  async list(dir: string): Promise<string[]> {
    return readdir(dir).catch(() => []);
  }
}

async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Ids come from clients: never let one become a path outside its folder. */
function safeName(id: string): string {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(id) || id.startsWith('.')) throw new Error(`unsafe name for the blob store: ${JSON.stringify(id)}`);
  return id;
}
