// The tus data store: @tus/server speaks the protocol, this decides and stores. Each accepted PATCH
// is written to a tmp file while hashed, checked against Upload-Checksum, placed in the upload's
// folder of the blob store and only then decided (UploadChunkAppended, expected version): a chunk
// that is refused (wrong offset, bad checksum, too long, a lost race) changes nothing. On
// completion the chunks become one content-addressed blob, ffprobe checks the limits, and the
// upload is completed or rejected. Who asks comes from the request context (x-userid).
import type { AsyncLocalStorage } from 'node:async_hooks';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DataStore, ERRORS, Upload } from '@tus/utils';
import { DomainError } from '../../domain/decider.ts';
import { upload, uploadStream, type UploadCommand, type UploadState } from '../../domain/uploads/upload.ts';
import type { BlobStore } from '../../infra/blobs/blob-store.ts';
import type { Config } from '../../infra/config.ts';
import type { Db } from '../../infra/db.ts';
import { CommandHandler } from '../../infra/eventstore/command-handler.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import type { Logger } from '../../infra/logger.ts';
import { ffprobe, MediaCommandFailed } from '../../infra/media/ffmpeg.ts';

export interface UploadRequest {
  userId: string;
  /** Upload-Checksum of this request, if it sent one. */
  checksum?: { algorithm: 'sha1' | 'sha256'; digest: Buffer };
}

/** A tus error: status and body, as @tus/server expects them thrown. */
export class TusError extends Error {
  constructor(readonly status_code: number, readonly body: string) {
    super(body);
  }
}

const SOURCE = '/api/uploads';

export class UploadStore extends DataStore {
  private readonly handler: CommandHandler;

  constructor(
    private readonly deps: { store: EventStore; blobs: BlobStore; config: Config; db: Db; logger: Logger },
    private readonly context: AsyncLocalStorage<UploadRequest>,
  ) {
    super();
    this.extensions = ['creation', 'creation-with-upload', 'checksum', 'termination', 'expiration'];
    this.handler = new CommandHandler(deps.store);
  }

  private caller(): UploadRequest {
    const ctx = this.context.getStore();
    if (!ctx) throw new Error('upload store used outside a request');
    return ctx;
  }

  decide(uploadId: string, command: () => UploadCommand) {
    return this.handler.handle(upload, uploadStream(uploadId), command, { key: uploadId, source: SOURCE });
  }

  load(uploadId: string) {
    return this.deps.store.load(uploadStream(uploadId), upload.initialState, upload.evolve);
  }

  /** The upload if the caller owns it; anyone else is told it does not exist. */
  async owned(uploadId: string, userId: string): Promise<UploadState> {
    const { state } = await this.load(uploadId);
    if (state.status === 'none' || state.userId !== userId) throw ERRORS.FILE_NOT_FOUND;
    return state;
  }

  override async create(file: Upload): Promise<Upload> {
    const { userId } = this.caller();
    const meta = file.metadata ?? {};
    // tus-js-client and Uppy name these differently; both are accepted.
    const filename = (meta.filename ?? meta.name ?? '').trim() || 'upload';
    const filetype = meta.filetype ?? meta.type ?? null;
    if (filename.length > 255) throw new DomainError('invalid', 'upload-metadata: filename is longer than 255 characters');
    const { events } = await this.decide(file.id, () => ({
      type: 'Create', uploadId: file.id, userId, filename, filetype, length: file.size ?? -1, maxBytes: this.deps.config.uploadMaxBytes, now: Date.now(),
    }));
    file.creation_date = new Date(events[0]!.data.at).toISOString();
    return file;
  }

  override async getUpload(id: string): Promise<Upload> {
    const state = await this.owned(id, this.caller().userId);
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

  chunkPath(uploadId: string, offset: number, sha256: string): string {
    return join(this.deps.blobs.uploadDir(uploadId), `${offset}-${sha256}`);
  }

  override async write(stream: Readable, id: string, offset: number): Promise<number> {
    const { userId, checksum } = this.caller();
    const { blobs } = this.deps;
    // A stream error (too long for the declared length, a broken request) throws here: nothing kept.
    const chunk = await blobs.writeTmp(stream, `chunk-${id}`, checksum?.algorithm);
    let placed: string | undefined;
    try {
      // A client that went away before sending a byte changed nothing.
      if (chunk.size === 0) return offset;
      if (checksum && !chunk.extra!.equals(checksum.digest)) {
        throw new TusError(460, JSON.stringify({ error: `upload-checksum: the ${checksum.algorithm} of the ${chunk.size} bytes received does not match`, field: 'upload-checksum' }));
      }
      placed = this.chunkPath(id, offset, chunk.sha256);
      await blobs.place(chunk.path, placed);
      await this.decide(id, () => ({ type: 'AppendChunk', uploadId: id, userId, offset, length: chunk.size, sha256: chunk.sha256, now: Date.now() }));
      placed = undefined;
      return offset + chunk.size;
    } finally {
      await blobs.removeFile(chunk.path);
      // Not appended: the chunk goes, unless a racing request appended the very same bytes there.
      if (placed) {
        const { state } = await this.load(id).catch(() => ({ state: undefined }));
        if (state && !state.chunks.some((c) => c.offset === offset && c.sha256 === chunk.sha256)) await blobs.removeFile(placed);
      }
    }
  }

  override async remove(id: string): Promise<void> {
    const { userId } = this.caller();
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
    const stale = await db
      .selectFrom('uploads')
      .select('upload_id')
      .where('status', '=', 'uploading')
      .where('created_at_ms', '<', now - config.uploadExpiryMs)
      .limit(1000)
      .execute();
    let n = 0;
    for (const { upload_id } of stale) {
      const { events, state } = await this.decide(upload_id, () => ({ type: 'Expire', uploadId: upload_id, now: Date.now(), expiryMs: config.uploadExpiryMs }));
      if (events.length || state.status === 'expired') await blobs.removeDir(blobs.uploadDir(upload_id));
      n += events.length;
    }
    return n;
  }

  /**
   * Every byte is in: joins the chunks into one blob named by its sha256, checks the limits and
   * completes or rejects the upload. Returns the reason when rejected. Safe to call again.
   */
  async finish(uploadId: string): Promise<{ rejected?: string }> {
    const { blobs, config, logger } = this.deps;
    const { state } = await this.load(uploadId);
    if (state.status === 'completed') return {};
    if (state.status === 'rejected') return { rejected: state.reason ?? 'rejected' };
    if (state.status !== 'uploading' || state.offset !== state.length) return {};
    const chunks = [...state.chunks].sort((a, b) => a.offset - b.offset);
    let sha256: string;
    if (chunks.length === 1) {
      // One chunk is the whole file: its hash is the file's, and it moves into place as it is.
      sha256 = chunks[0]!.sha256;
      const path = this.chunkPath(uploadId, 0, sha256);
      if ((await blobs.size(sha256)) === undefined) await blobs.adopt(path, sha256);
    } else if (chunks.length === 0) {
      sha256 = (await blobs.concat([], `upload-${uploadId}`)).sha256;
    } else {
      sha256 = (await blobs.concat(chunks.map((c) => this.chunkPath(uploadId, c.offset, c.sha256)), `upload-${uploadId}`)).sha256;
    }
    let reason: string | undefined;
    let durationSeconds: number | null = null;
    if (!state.raw) {
      try {
        const probe = await ffprobe(blobs.pathOf(sha256));
        durationSeconds = probe.durationSeconds;
        if (!probe.video) reason = 'file: no video stream found';
        else if (durationSeconds === null) reason = 'file: the video has no readable duration';
        else if (durationSeconds > config.uploadMaxSeconds) {
          reason = `file: the video is ${minutes(durationSeconds)} long; at most ${minutes(config.uploadMaxSeconds)} is accepted (raw .yuv has no time limit)`;
        }
      } catch (err) {
        const detail = err instanceof MediaCommandFailed ? err.stderrTail.split('\n').at(-1) : String(err);
        reason = `file: not a readable video (${detail || 'ffprobe failed'})`;
      }
    }
    const size = state.length;
    if (reason) {
      const why = reason;
      await this.decide(uploadId, () => ({ type: 'Reject', uploadId, reason: why, now: Date.now() }));
      // The bytes go, unless the same file is also a completed upload of someone else.
      const kept = await this.deps.db.selectFrom('uploads').select('upload_id').where('sha256', '=', sha256).where('status', '=', 'completed').executeTakeFirst();
      if (!kept) await blobs.remove(sha256);
      logger.info({ uploadId, reason }, 'upload rejected');
    } else {
      await this.decide(uploadId, () => ({ type: 'Complete', uploadId, sha256, size, durationSeconds, now: Date.now() }));
    }
    await blobs.removeDir(blobs.uploadDir(uploadId));
    return reason ? { rejected: reason } : {};
  }
}

function minutes(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  return `${m} min${s ? ` ${s} s` : ''}`;
}
