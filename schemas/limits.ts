// The longest each string field of each event may be (in UTF-16 code units, as JavaScript counts),
// so no event on the log can hold an unbounded string: the edges check these first with messages
// for people (a caption's text is limited in characters there), and the codec refuses to encode
// an event that exceeds them, so a bug cannot poison a topic either. Every string field of every
// schema must be listed: test/unit/limits.test.ts fails otherwise. docs/events.md lists them too.
import type { EventType } from './types.generated.ts';

const ID = 36; // a UUID
const SHA256 = 64; // hex
const STEP = 16;

/** Per event, per field path ("options.preset", "active[]"), the most characters allowed. */
export const STRING_LIMITS: Record<EventType, Record<string, number>> = {
  CaptionFragmentReceived: { channel: 64, station: 64, text: 4000, lang: 35 },
  UserIdIssued: { userId: ID },
  StreamIdIssued: { streamId: ID },
  UserLimitSet: { userId: ID },
  StreamActivated: { userId: ID, streamId: ID },
  StreamHeartbeat: { userId: ID, streamId: ID },
  StreamDeactivated: { userId: ID, streamId: ID },
  ActivationRejected: { userId: ID, streamId: ID, 'active[]': ID },
  UploadCreated: { uploadId: ID, userId: ID, filename: 255, filetype: 255 },
  UploadChunkAppended: { uploadId: ID, userId: ID, sha256: SHA256 },
  UploadCompleted: { uploadId: ID, userId: ID, sha256: SHA256 },
  UploadRejected: { uploadId: ID, userId: ID, reason: 1000 },
  UploadTerminated: { uploadId: ID, userId: ID },
  UploadExpired: { uploadId: ID, userId: ID },
  EncodeRequested: {
    jobId: ID,
    userId: ID,
    uploadId: ID,
    sha256: SHA256,
    filename: 255,
    'options.preset': 16,
    'options.container': 8,
    webhookUrl: 2048,
  },
  EncodeDeduplicated: { jobId: ID, userId: ID, ownerId: ID, uploadId: ID },
  EncodeStepStarted: { jobId: ID, userId: ID, step: STEP, worker: 300 },
  EncodeProgressed: { jobId: ID, userId: ID, step: STEP },
  EncodeStepCompleted: { jobId: ID, userId: ID, step: STEP, info: 4000 },
  EncodeFailed: { jobId: ID, userId: ID, step: STEP, reason: 1000, stderrTail: 8000 },
  EncodeCompleted: { jobId: ID, userId: ID, outputSha256: SHA256, container: 8 },
  AlertCreated: {
    alertId: ID,
    userId: ID,
    query: 256,
    tsquery: 20_000,
    'channels[]': 64,
    lang: 35,
    email: 254,
    webhookUrl: 2048,
  },
  AlertDeleted: { alertId: ID, userId: ID },
  AlertEmailStopped: { alertId: ID, userId: ID },
  AlertMatched: { alertId: ID, userId: ID, channel: 64, position: 30, station: 64, text: 4000, snippet: 40_000 },
};

/** One step of a field path: a property, or every element of the array under it ("active[]"). */
interface Step {
  key: string;
  each: boolean;
}

interface FieldLimit {
  steps: Step[];
  max: number;
  problem: string;
}

/** Per event, its limits with their paths split once (every append checks them). */
const FIELD_LIMITS = new Map<string, FieldLimit[]>(
  Object.entries(STRING_LIMITS).map(([type, fields]) => [
    type,
    Object.entries(fields).map(([path, max]) => ({
      steps: path.split('.').map((part) => ({ key: part.replace(/\[\]$/, ''), each: part.endsWith('[]') })),
      max,
      problem: `${path.replace('[]', '')}: longer than ${max} characters`,
    })),
  ]),
);

/** The first string field of `data` longer than its limit, as "field: ...", or undefined. */
export function overLimit(type: EventType, data: unknown): string | undefined {
  for (const field of FIELD_LIMITS.get(type) ?? []) if (longer(data, field, 0)) return field.problem;
  return undefined;
}

/** Whether a string at `field`'s path below `data` (from step `i` on) is longer than its limit. */
function longer(data: unknown, field: FieldLimit, i: number): boolean {
  if (i === field.steps.length) return typeof data === 'string' && data.length > field.max;
  if (typeof data !== 'object' || data === null) return false;
  const { key, each } = field.steps[i]!;
  const value = (data as Record<string, unknown>)[key];
  if (!each) return longer(value, field, i + 1);
  if (!Array.isArray(value)) return false;
  for (const element of value) if (longer(element, field, i + 1)) return true;
  return false;
}
