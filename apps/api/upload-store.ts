// The tus data store: @tus/server speaks the protocol, this decides and stores. An upload's bytes
// go into one file, in place, while tus holds the upload's lock (across api processes: see
// upload-locker.ts). Each PATCH body is written at the upload's offset, hashed on the way, checked
// against Upload-Checksum, made durable and only then decided (UploadChunkAppended, expected
// version); a chunk that is refused (wrong offset, bad checksum, too long, a lost race) is cut off
// again and changes nothing. On completion the file is linked into the blob store under its
// sha256, ffprobe checks the limits, and the upload is completed or rejected. Who asks comes from
// the request context (x-userid or a user token).
import type { AsyncLocalStorage } from 'node:async_hooks';
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { DataStore, ERRORS, Upload } from '@tus/utils';
import { DomainError } from '../../domain/decider.ts';
import { upload, uploadStream, type UploadCommand, type UploadState } from '../../domain/uploads/upload.ts';
import type { BlobStore } from '../../infra/blobs/blob-store.ts';
import { HashThread, type HashSession } from '../../infra/blobs/hash-thread.ts';
import type { Config } from '../../infra/config.ts';
import type { Db } from '../../projections/database.ts';
import { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import type { Logger } from '../../infra/logger.ts';
import { ffprobe, MediaCommandFailed } from '../../infra/media/ffmpeg.ts';
import { isCompletedFile, unfinishedUploadsBefore } from '../../projections/uploads/queries.ts';
import type { UploadLocker } from './upload-locker.ts';

export interface UploadRequest {
  userId: string;
  /** Upload-Checksum of this request, if it sent one. */
  checksum?: { algorithm: 'sha1' | 'sha256'; digest: Buffer };
  /** The upload this request created (creation, creation-with-upload). */
  created?: string;
  /** The upload as tus last had it loaded for this request (under its lock). */
  loaded?: { id: string; state: UploadState; version: number };
}

/** A tus error: status and body, as @tus/server expects them thrown. */
export class TusError extends Error {
  constructor(
    readonly status_code: number,
    readonly body: string,
  ) {
    super(body);
  }
}

const SOURCE = '/api/uploads';
export const MAX_FILENAME_CHARS = 255;
export const MAX_FILETYPE_CHARS = 255;
/** Upload owners kept in memory; an upload beyond these is loaded to check its owner. */
const MAX_OWNERS = 10_000;

export class UploadStore extends DataStore {
  private readonly handler: CommandHandler;
  /**
   * The sha256 of each upload so far, kept while this process receives every chunk in turn, so
   * completion need not read the file again. Only a shortcut: without it the file is read once.
   */
  private readonly running = new Map<string, { offset: number; hashes: HashSession; at: number }>();
  private readonly hashes = new HashThread();
  /** Owners of uploads seen lately (owners never change), oldest first. */
  private readonly owners = new Map<string, string>();

  constructor(
    private readonly deps: { store: EventStore; blobs: BlobStore; config: Config; db: Db; logger: Logger },
    private readonly context: AsyncLocalStorage<UploadRequest>,
    private readonly locker: UploadLocker,
  ) {
    super();
    this.extensions = ['creation', 'creation-with-upload', 'checksum', 'termination', 'expiration'];
    this.handler = new CommandHandler(deps.store);
    // The thread's hashes died with it: completions then read their files instead.
    this.hashes.onLost = () => this.running.clear();
  }

  /**
   * Lets go of the hashes kept for these uploads: their completion reads the file instead (also
   * what a lost lock calls for, as writes may then have overlapped another process's).
   */
  forget(uploadIds: string[]): void {
    for (const id of uploadIds) {
      this.running.get(id)?.hashes.drop();
      this.running.delete(id);
    }
  }

  async close(): Promise<void> {
    this.running.clear();
    await this.hashes.close();
  }

  private caller(): UploadRequest {
    const ctx = this.context.getStore();
    if (!ctx) throw new Error('upload store used outside a request');
    return ctx;
  }

  decide(uploadId: string, command: () => UploadCommand, known?: { state: UploadState; version: number }) {
    return this.handler.handle(upload, uploadStream(uploadId), command, { key: uploadId, source: SOURCE, known });
  }

  load(uploadId: string) {
    return this.deps.store.load(uploadStream(uploadId), upload.initialState, upload.evolve);
  }

  /** The upload if the caller owns it; anyone else is told it does not exist. */
  async owned(uploadId: string, userId: string): Promise<UploadState> {
    return (await this.loadOwned(uploadId, userId)).state;
  }

  /** The upload as loaded, if `userId` owns it; anyone else is told it does not exist. */
  private async loadOwned(uploadId: string, userId: string): Promise<{ state: UploadState; version: number }> {
    const { state, version } = await this.load(uploadId);
    if (state.status === 'none' || state.userId !== userId) throw ERRORS.FILE_NOT_FOUND;
    this.rememberOwner(uploadId, userId);
    return { state, version };
  }

  /**
   * Throws unless the caller owns the upload. An upload's owner never changes once it exists, so
   * an owner seen before is taken from memory: a PATCH needs no load of its own before tus's.
   */
  async checkOwner(uploadId: string, userId: string): Promise<void> {
    if (this.owners.get(uploadId) !== userId) await this.owned(uploadId, userId);
  }

  private rememberOwner(uploadId: string, userId: string): void {
    if (this.owners.size >= MAX_OWNERS) this.owners.delete(this.owners.keys().next().value!);
    this.owners.set(uploadId, userId);
  }

  override async create(file: Upload): Promise<Upload> {
    const { userId } = this.caller();
    const meta = file.metadata ?? {};
    // tus-js-client and Uppy name these differently; both are accepted.
    const filename = (meta.filename ?? meta.name ?? '').trim() || 'upload';
    const filetype = meta.filetype ?? meta.type ?? null;
    if (filename.length > MAX_FILENAME_CHARS)
      throw new DomainError('invalid', `upload-metadata: filename is longer than ${MAX_FILENAME_CHARS} characters`);
    if (filetype !== null && filetype.length > MAX_FILETYPE_CHARS)
      throw new DomainError('invalid', `upload-metadata: filetype is longer than ${MAX_FILETYPE_CHARS} characters`);
    for (const [key, value] of [
      ['filename', filename],
      ['filetype', filetype ?? ''],
    ] as const) {
      if (/[\u0000-\u001f\u007f]|\p{Cs}/u.test(value) || value.includes('\ufffd')) {
        throw new DomainError('invalid', `upload-metadata: ${key} must be UTF-8 text without control characters`);
      }
    }
    const { events } = await this.decide(file.id, () => ({
      type: 'Create',
      uploadId: file.id,
      userId,
      filename,
      filetype,
      length: file.size ?? -1,
      maxBytes: this.deps.config.uploadMaxBytes,
      now: Date.now(),
    }));
    file.creation_date = new Date(events[0]!.data.at).toISOString();
    this.caller().created = file.id;
    return file;
  }

  override async getUpload(id: string): Promise<Upload> {
    const ctx = this.caller();
    const { state, version } = await this.loadOwned(id, ctx.userId);
    // tus asks under the upload's lock, just before a PATCH writes: the decision starts from this.
    ctx.loaded = { id, state, version };
    if (state.status === 'terminated') throw ERRORS.FILE_NOT_FOUND;
    if (state.status === 'expired' || state.status === 'rejected') throw ERRORS.FILE_NO_LONGER_EXISTS;
    return new Upload({
      id,
      size: state.length,
      offset: state.offset,
      metadata: { filename: state.filename, ...(state.filetype ? { filetype: state.filetype } : {}) },
      creation_date: new Date(state.createdAt).toISOString(),
    });
  }

  override async write(stream: Readable, id: string, offset: number): Promise<number> {
    const { userId, checksum, loaded } = this.caller();
    const { blobs } = this.deps;
    const path = blobs.uploadData(id);
    // The whole file's hash goes on from where it was when this process saw every chunk before this one.
    const running = this.running.get(id);
    const first = offset === 0;
    const continues = first || running?.offset === offset;
    // A first chunk's bytes are the file's so far: one hash serves as both (hashed once).
    const algorithms: [string, string][] = [[first ? 'whole' : 'chunk', 'sha256']];
    if (checksum && checksum.algorithm !== 'sha256') algorithms.push(['checksum', checksum.algorithm]);
    const hashes = this.hashes.start(algorithms, !first && continues ? { session: running!.hashes, name: 'whole' } : undefined);
    let accepted = false;
    try {
      // tus locked the upload and read its offset under the lock: bytes past it are no one's.
      const size = await blobs.writeAt(path, offset, stream, [hashes]);
      // A client that went away before sending a byte changed nothing.
      if (size === 0) return offset;
      const digests = first ? await hashes.peek(['whole', 'checksum']) : await hashes.digest(['chunk', 'checksum']);
      const chunk = first ? digests.whole! : digests.chunk!;
      if (checksum && !(digests.checksum ?? chunk).equals(checksum.digest)) {
        throw new TusError(
          460,
          JSON.stringify({
            error: `upload-checksum: the ${checksum.algorithm} of the ${size} bytes received does not match`,
            field: 'upload-checksum',
          }),
        );
      }
      // The lock lost meanwhile (its connection dropped): another request may own the upload now.
      if (!this.locker.holds(id)) throw ERRORS.ABORTED;
      // Decided on the state tus had us load under this lock (a write meanwhile costs a reload).
      const known = loaded?.id === id ? { state: loaded.state, version: loaded.version } : undefined;
      await this.decide(
        id,
        () => ({
          type: 'AppendChunk',
          uploadId: id,
          userId,
          offset,
          length: size,
          sha256: chunk.toString('hex'),
          now: Date.now(),
        }),
        known,
      );
      accepted = true;
      this.forget([id]);
      if (continues) this.running.set(id, { offset: offset + size, hashes, at: Date.now() });
      return offset + size;
    } finally {
      if (!accepted || !continues) hashes.drop();
      if (!accepted) {
        // Refused: the bytes go. Cut back to what the log says was accepted (a decision whose answer
        // was lost may still have been recorded); if it cannot be asked, the next writer cuts.
        const { state } = await this.load(id).catch(() => ({ state: undefined }));
        if (state) await blobs.truncate(path, state.offset);
      }
    }
  }

  /**
   * An upload created by a request that then failed (creation-with-upload whose body ran past
   * Upload-Length, say): terminated at once, so nothing of it remains to resume or find.
   */
  async discard(id: string): Promise<void> {
    await this.remove(id).catch((err) => this.deps.logger.warn({ err, uploadId: id }, 'could not discard a failed creation'));
  }

  override async remove(id: string): Promise<void> {
    const { userId } = this.caller();
    this.forget([id]);
    await this.decide(id, () => ({ type: 'Terminate', uploadId: id, userId, now: Date.now() }));
    await this.deps.blobs.removeDir(this.deps.blobs.uploadDir(id));
  }

  override getExpiration(): number {
    return this.deps.config.uploadExpiryMs;
  }

  /** Expires unfinished uploads past the expiry period and removes their bytes. */
  override async deleteExpired(): Promise<number> {
    const { config, db, blobs } = this.deps;
    const now = Date.now();
    // Hashes kept for uploads that another process went on with and finished.
    this.forget([...this.running].filter(([, r]) => r.at < now - config.uploadExpiryMs).map(([id]) => id));
    const stale = await unfinishedUploadsBefore(db, now - config.uploadExpiryMs, 1000);
    let n = 0;
    for (const { upload_id } of stale) {
      // Under the upload's lock, so no PATCH is writing bytes that would outlive the folder.
      n += await this.locked(upload_id, async () => {
        const { events, state } = await this.decide(upload_id, () => ({
          type: 'Expire',
          uploadId: upload_id,
          now: Date.now(),
          expiryMs: config.uploadExpiryMs,
        }));
        if (events.length || state.status === 'expired') {
          this.forget([upload_id]);
          await blobs.removeDir(blobs.uploadDir(upload_id));
        }
        return events.length;
      });
    }
    return n;
  }

  /** Runs `work` holding the upload's lock (a request for the upload waits for it meanwhile). */
  private async locked<T>(uploadId: string, work: () => Promise<T>): Promise<T> {
    const lock = this.locker.newLock(uploadId);
    await lock.lock(new AbortController().signal, async () => undefined);
    try {
      return await work();
    } finally {
      await lock.unlock();
    }
  }

  /**
   * Every byte is in: the file joins the blob store under its sha256, the limits are checked, and
   * the upload is completed or rejected. Returns the reason when rejected. Safe to call again.
   */
  async finish(uploadId: string): Promise<{ rejected?: string }> {
    // tus let go of the upload before calling this; nothing else may write it meanwhile.
    return this.locked(uploadId, () => this.finishLocked(uploadId));
  }

  private async finishLocked(uploadId: string): Promise<{ rejected?: string }> {
    const { blobs, config, logger } = this.deps;
    const { state, version } = await this.load(uploadId);
    if (state.status === 'completed') return {};
    if (state.status === 'rejected') return { rejected: state.reason ?? 'rejected' };
    if (state.status !== 'uploading' || state.offset !== state.length) return {};
    const sha256 = await this.wholeHash(uploadId, state);
    let reason =
      sha256 === undefined ? 'file: the stored bytes do not match the checksums of the chunks received; upload the file again' : undefined;
    let durationSeconds: number | null = null;
    // Into the blob store under its hash: a link, not a copy.
    if (sha256 !== undefined) await blobs.adopt(blobs.uploadData(uploadId), sha256);
    if (sha256 !== undefined && !state.raw) {
      try {
        const probe = await ffprobe(blobs.pathOf(sha256));
        durationSeconds = probe.durationSeconds;
        if (!probe.video) reason = 'file: no video stream found';
        else if (durationSeconds === null) reason = 'file: the video has no readable duration';
        else if (durationSeconds > config.uploadMaxSeconds) {
          reason =
            `file: the video is ${minutes(durationSeconds)} long; ` +
            `at most ${minutes(config.uploadMaxSeconds)} is accepted (raw .yuv has no time limit)`;
        }
      } catch (err) {
        // ffprobe names the file it read; a reason names the problem, never a server path.
        const last = err instanceof MediaCommandFailed ? (err.stderrTail.trim().split('\n').at(-1) ?? '') : '';
        const detail = last
          .replace(/^.*?:\s+(?=[A-Z])/, '')
          .replace(/\/[^\s:]+/g, 'the file')
          .trim();
        reason = `file: not a readable video (${detail.slice(0, 300) || 'ffprobe could not read it'})`;
        logger.info({ uploadId, err }, 'ffprobe refused an upload');
      }
    }
    const size = state.length;
    if (reason) {
      const why = reason;
      await this.decide(uploadId, () => ({ type: 'Reject', uploadId, reason: why, now: Date.now() }));
      // The bytes go, unless the same file is also a completed upload of someone else.
      const kept = sha256 !== undefined && (await isCompletedFile(this.deps.db, sha256));
      if (sha256 !== undefined && !kept) await blobs.remove(sha256);
      logger.info({ uploadId, reason }, 'upload rejected');
    } else {
      // Under the lock since the load above: decided on that state (a write meanwhile costs a reload).
      await this.decide(uploadId, () => ({ type: 'Complete', uploadId, sha256: sha256!, size, durationSeconds, now: Date.now() }), {
        state,
        version,
      });
    }
    await blobs.removeDir(blobs.uploadDir(uploadId));
    return reason ? { rejected: reason } : {};
  }

  /**
   * The sha256 of a complete upload. Kept as the chunks arrived when this process received them
   * all under an unbroken lock; otherwise the file is read once and every chunk checked against
   * the sha256 its event recorded. Undefined when the stored bytes differ from what was received.
   */
  private async wholeHash(uploadId: string, state: UploadState): Promise<string | undefined> {
    const running = this.running.get(uploadId);
    this.running.delete(uploadId);
    const kept = running?.offset === state.length ? await running.hashes.digest(['whole']).catch(() => undefined) : undefined;
    running?.hashes.drop();
    const path = this.deps.blobs.uploadData(uploadId);
    // An upload of no bytes never had a PATCH that made its file.
    if (!existsSync(path)) await this.deps.blobs.writeAt(path, 0, Readable.from([]), []);
    const size = (await stat(path)).size;
    if (size < state.length) return undefined;
    if (size > state.length) await this.deps.blobs.truncate(path, state.length); // a refused write's leftovers
    if (kept?.whole) return kept.whole.toString('hex');
    const chunks = [...state.chunks].sort((a, b) => a.offset - b.offset);
    const { sha256, ranges } = await this.deps.blobs.hashRanges(
      path,
      chunks.map((c) => c.length),
    );
    return chunks.every((c, i) => c.sha256 === ranges[i]) ? sha256 : undefined;
  }
}

function minutes(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  return `${m} min${s ? ` ${s} s` : ''}`;
}
