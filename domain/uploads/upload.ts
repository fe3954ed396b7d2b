// One resumable upload. Rules:
// - only its owner may append, complete or terminate it;
// - a chunk must start exactly at the current offset and may not run past the declared length;
// - once completed, rejected, terminated or expired, nothing more happens to it.
import type { EventOf } from '../../schemas/types.generated.ts';
import { DomainError, type Decider } from '../decider.ts';

export type UploadEvent = EventOf<
  'UploadCreated' | 'UploadChunkAppended' | 'UploadCompleted' | 'UploadRejected' | 'UploadTerminated' | 'UploadExpired'
>;

export type UploadCommand =
  | {
      type: 'Create';
      uploadId: string;
      userId: string;
      filename: string;
      filetype: string | null;
      length: number;
      maxBytes: number;
      now: number;
    }
  | { type: 'AppendChunk'; uploadId: string; userId: string; offset: number; length: number; sha256: string; now: number }
  | { type: 'Complete'; uploadId: string; sha256: string; size: number; durationSeconds: number | null; now: number }
  | { type: 'Reject'; uploadId: string; reason: string; now: number }
  | { type: 'Terminate'; uploadId: string; userId: string; now: number }
  | { type: 'Expire'; uploadId: string; now: number; expiryMs: number };

export type UploadStatus = 'none' | 'uploading' | 'completed' | 'rejected' | 'terminated' | 'expired';

export interface Chunk {
  offset: number;
  length: number;
  sha256: string;
}

export interface UploadState {
  status: UploadStatus;
  userId: string;
  filename: string;
  filetype: string | null;
  raw: boolean;
  length: number;
  offset: number;
  createdAt: number;
  chunks: Chunk[];
  sha256: string | null;
  reason: string | null;
}

/** A chunk that would run past the declared length or the maximum: the edge answers 413. */
export class UploadTooLarge extends DomainError {
  constructor(message: string) {
    super('invalid', message);
  }
}

export const isRawVideo = (filename: string) => /\.yuv$/i.test(filename);

export const initialState = (): UploadState => ({
  status: 'none',
  userId: '',
  filename: '',
  filetype: null,
  raw: false,
  length: 0,
  offset: 0,
  createdAt: 0,
  chunks: [],
  sha256: null,
  reason: null,
});

export function evolve(state: UploadState, event: UploadEvent): UploadState {
  switch (event.type) {
    case 'UploadCreated': {
      const d = event.data;
      return {
        ...initialState(),
        status: 'uploading',
        userId: d.userId,
        filename: d.filename,
        filetype: d.filetype,
        raw: d.raw,
        length: d.length,
        createdAt: d.at,
      };
    }
    case 'UploadChunkAppended': {
      const { offset, length, sha256 } = event.data;
      return { ...state, offset: offset + length, chunks: [...state.chunks, { offset, length, sha256 }] };
    }
    case 'UploadCompleted':
      return { ...state, status: 'completed', sha256: event.data.sha256 };
    case 'UploadRejected':
      return { ...state, status: 'rejected', reason: event.data.reason };
    case 'UploadTerminated':
      return { ...state, status: 'terminated' };
    case 'UploadExpired':
      return { ...state, status: 'expired' };
  }
}

function requireOwner(state: UploadState, uploadId: string, userId: string): void {
  // Someone else's upload is reported as missing: its existence is not theirs to learn.
  if (state.status === 'none' || state.userId !== userId) throw new DomainError('not_found', `uploadId: no upload ${uploadId}`);
}

function requireUploading(state: UploadState, uploadId: string): void {
  if (state.status === 'none') throw new DomainError('not_found', `uploadId: no upload ${uploadId}`);
  if (state.status !== 'uploading') throw new DomainError('conflict', `uploadId: upload ${uploadId} is ${state.status}`);
}

export function decide(command: UploadCommand, state: UploadState): UploadEvent[] {
  const { uploadId, now } = command;
  switch (command.type) {
    case 'Create': {
      if (state.status !== 'none') throw new DomainError('conflict', `uploadId: upload ${uploadId} exists`);
      if (!Number.isSafeInteger(command.length) || command.length < 0)
        throw new DomainError('invalid', 'upload-length: must be a non-negative integer');
      if (command.length > command.maxBytes)
        throw new UploadTooLarge(`upload-length: ${command.length} bytes is over the maximum of ${command.maxBytes}`);
      const { userId, filename, filetype, length } = command;
      return [{ type: 'UploadCreated', data: { uploadId, userId, filename, filetype, length, raw: isRawVideo(filename), at: now } }];
    }
    case 'AppendChunk': {
      requireOwner(state, uploadId, command.userId);
      requireUploading(state, uploadId);
      if (command.offset !== state.offset) {
        throw new DomainError('conflict', `upload-offset: is ${command.offset}, the upload is at ${state.offset}`);
      }
      if (!Number.isSafeInteger(command.length) || command.length <= 0)
        throw new DomainError('invalid', 'content-length: a chunk has at least one byte');
      if (command.offset + command.length > state.length) {
        throw new UploadTooLarge(
          `content-length: ${command.length} bytes at ${command.offset} run past the upload's length of ${state.length}`,
        );
      }
      const { userId, offset, length, sha256 } = command;
      return [{ type: 'UploadChunkAppended', data: { uploadId, userId, offset, length, sha256, at: now } }];
    }
    case 'Complete':
      requireUploading(state, uploadId);
      if (state.offset !== state.length)
        throw new DomainError('conflict', `uploadId: ${state.length - state.offset} bytes are still missing`);
      if (command.size !== state.length)
        throw new DomainError('conflict', `uploadId: the stored file has ${command.size} bytes, not ${state.length}`);
      return [
        {
          type: 'UploadCompleted',
          data: {
            uploadId,
            userId: state.userId,
            sha256: command.sha256,
            size: command.size,
            durationSeconds: command.durationSeconds,
            at: now,
          },
        },
      ];
    case 'Reject':
      requireUploading(state, uploadId);
      return [{ type: 'UploadRejected', data: { uploadId, userId: state.userId, reason: command.reason, at: now } }];
    case 'Terminate':
      requireOwner(state, uploadId, command.userId);
      requireUploading(state, uploadId);
      return [{ type: 'UploadTerminated', data: { uploadId, userId: state.userId, at: now } }];
    case 'Expire':
      if (state.status !== 'uploading' || now < state.createdAt + command.expiryMs) return [];
      return [{ type: 'UploadExpired', data: { uploadId, userId: state.userId, at: now } }];
  }
}

export const upload: Decider<UploadCommand, UploadEvent, UploadState> = { initialState, decide, evolve };

/** The event-store stream of an upload. */
export const uploadStream = (uploadId: string) => `upload-${uploadId}`;
