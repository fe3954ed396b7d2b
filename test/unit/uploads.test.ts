// The upload rules as given events / command / expected events or error: a chunk starts at the
// current offset and stays within the declared length; only the owner appends or terminates; a
// finished, rejected, terminated or expired upload takes nothing more.
import { describe, expect, it } from 'vitest';
import { DomainError, type DomainErrorKind } from '../../domain/decider.ts';
import { isRawVideo, upload, UploadTooLarge, type UploadCommand, type UploadEvent } from '../../domain/uploads/upload.ts';
import { spec, type ErrorClass } from '../support/decider-spec.ts';

const { given, stateAfter } = spec(upload);

const U = 'upload-1';
const OWNER = 'user-a';
const T = 1_700_000_000_000;
const MAX = 1000;
const created = (length = 100, filename = 'clip.mp4'): UploadEvent => ({
  type: 'UploadCreated',
  data: { uploadId: U, userId: OWNER, filename, filetype: 'video/mp4', length, raw: isRawVideo(filename), at: T },
});
const chunk = (offset: number, length: number, sha256 = `sha-${offset}`): UploadEvent => ({
  type: 'UploadChunkAppended',
  data: { uploadId: U, userId: OWNER, offset, length, sha256, at: T },
});
const append = (offset: number, length: number, userId = OWNER): UploadCommand => ({
  type: 'AppendChunk',
  uploadId: U,
  userId,
  offset,
  length,
  sha256: `sha-${offset}`,
  now: T,
});
const create = (length = 100, filename = 'clip.mp4'): UploadCommand => ({
  type: 'Create',
  uploadId: U,
  userId: OWNER,
  filename,
  filetype: 'video/mp4',
  length,
  maxBytes: MAX,
  now: T,
});
const complete = (size = 100): UploadCommand => ({ type: 'Complete', uploadId: U, sha256: 'whole', size, durationSeconds: 12.5, now: T });
const terminate = (userId = OWNER): UploadCommand => ({ type: 'Terminate', uploadId: U, userId, now: T });
const expire = (now: number): UploadCommand => ({ type: 'Expire', uploadId: U, now, expiryMs: 1000 });
const ended = {
  completed: { type: 'UploadCompleted', data: { uploadId: U, userId: OWNER, sha256: 'whole', size: 100, durationSeconds: 1, at: T } },
  rejected: { type: 'UploadRejected', data: { uploadId: U, userId: OWNER, reason: 'too long', at: T } },
  terminated: { type: 'UploadTerminated', data: { uploadId: U, userId: OWNER, at: T } },
  expired: { type: 'UploadExpired', data: { uploadId: U, userId: OWNER, at: T } },
} satisfies Record<string, UploadEvent>;

describe('uploads decider: creation', () => {
  it('creates an upload; .yuv marks raw video', () => {
    given([])
      .when(create(100))
      .then([created(100)]);
    given([])
      .when(create(100, 'cam.YUV'))
      .then([created(100, 'cam.YUV')]);
    expect(stateAfter([created(100, 'cam.yuv')]).raw).toBe(true);
  });
  it.each<[string, UploadEvent[], UploadCommand, DomainErrorKind, ErrorClass]>([
    ['twice', [created()], create(), 'conflict', DomainError],
    ['over the maximum', [], create(MAX + 1), 'invalid', UploadTooLarge],
    ['negative length', [], create(-1), 'invalid', DomainError],
  ])('refuses to create %s', (_n, events, command, kind, type) => given(events).when(command).thenThrows(kind, type));
});

describe('uploads decider: chunks', () => {
  it('appends at the current offset, and the offset moves on', () => {
    given([created()])
      .when(append(0, 40))
      .then([chunk(0, 40)]);
    given([created(), chunk(0, 40)])
      .when(append(40, 60))
      .then([chunk(40, 60)]);
    expect(stateAfter([created(), chunk(0, 40), chunk(40, 60)])).toMatchObject({
      offset: 100,
      chunks: [
        { offset: 0, length: 40 },
        { offset: 40, length: 60 },
      ],
    });
  });
  it.each<[string, UploadEvent[], UploadCommand, DomainErrorKind, ErrorClass]>([
    ['at an offset behind', [created(), chunk(0, 40)], append(0, 10), 'conflict', DomainError],
    ['at an offset ahead', [created(), chunk(0, 40)], append(50, 10), 'conflict', DomainError],
    ['past the declared length', [created(), chunk(0, 40)], append(40, 61), 'invalid', UploadTooLarge],
    ['of no bytes', [created()], append(0, 0), 'invalid', DomainError],
    ["to someone else's upload", [created()], append(0, 10, 'user-b'), 'not_found', DomainError],
    ['to an upload that does not exist', [], append(0, 10), 'not_found', DomainError],
    ...(Object.entries(ended).map(([name, e]) => [
      `after it was ${name}`,
      [created(), chunk(0, 40), e],
      append(40, 10),
      'conflict',
      DomainError,
    ]) as [string, UploadEvent[], UploadCommand, DomainErrorKind, ErrorClass][]),
  ])('refuses a chunk %s', (_n, events, command, kind, type) => given(events).when(command).thenThrows(kind, type));
});

describe('uploads decider: the end of an upload', () => {
  it('completes once every byte is in', () =>
    given([created(), chunk(0, 100)])
      .when(complete())
      .then([{ type: 'UploadCompleted', data: { uploadId: U, userId: OWNER, sha256: 'whole', size: 100, durationSeconds: 12.5, at: T } }]));
  it('refuses to complete with bytes missing, or a stored size that differs', () => {
    given([created(), chunk(0, 40)])
      .when(complete())
      .thenThrows('conflict');
    given([created(), chunk(0, 100)])
      .when(complete(99))
      .thenThrows('conflict');
  });
  it('rejects with the reason', () =>
    given([created(), chunk(0, 100)])
      .when({ type: 'Reject', uploadId: U, reason: 'file: too long', now: T })
      .then([{ type: 'UploadRejected', data: { uploadId: U, userId: OWNER, reason: 'file: too long', at: T } }]));
  it('is terminated by its owner only, and only while unfinished', () => {
    given([created(), chunk(0, 40)])
      .when(terminate())
      .then([ended.terminated]);
    given([created()]).when(terminate('user-b')).thenThrows('not_found');
    given([created(), chunk(0, 100), ended.completed])
      .when(terminate())
      .thenThrows('conflict');
  });
  it('expires only once the expiry period has passed, and only while unfinished', () => {
    given([created()])
      .when(expire(T + 999))
      .then([]);
    given([created()])
      .when(expire(T + 1000))
      .then([{ type: 'UploadExpired', data: { uploadId: U, userId: OWNER, at: T + 1000 } }]);
    given([created(), chunk(0, 100), ended.completed])
      .when(expire(T + 5000))
      .then([]);
    given([created(), ended.expired])
      .when(expire(T + 5000))
      .then([]);
  });
});
