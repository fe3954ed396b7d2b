// Generated from schemas/avro by `npm run schemas:generate`; do not edit.

export interface ActivationRejected {
  userId: string;
  streamId: string;
  limit: number;
  active: Array<string>;
  at: number;
}

export interface AlertCreated {
  alertId: string;
  userId: string;
  query: string;
  tsquery: string;
  channels: Array<string>;
  lang: null | string;
  email: null | string;
  webhookUrl: null | string;
  at: number;
}

export interface AlertDeleted {
  alertId: string;
  userId: string;
  at: number;
}

export interface AlertEmailStopped {
  alertId: string;
  userId: string;
  at: number;
}

export interface AlertMatched {
  alertId: string;
  userId: string;
  channel: string;
  position: string;
  station: string;
  start: number;
  text: string;
  snippet: string;
  at: number;
}

export type CaptionMode = "rollup" | "popon" | "painton";

export interface CaptionFragmentReceived {
  channel: string;
  station: string;
  seq: number;
  text: string;
  start: number;
  end: number;
  mode: null | CaptionMode;
  lang: null | string;
  receivedAt: number;
}

export interface EncodeCompleted {
  jobId: string;
  userId: string;
  outputSha256: string;
  size: number;
  container: string;
  at: number;
}

export interface EncodeDeduplicated {
  jobId: string;
  userId: string;
  ownerId: string;
  uploadId: string;
  again: boolean;
  at: number;
}

export interface EncodeFailed {
  jobId: string;
  userId: string;
  step: string;
  reason: string;
  stderrTail: string;
  at: number;
}

export interface EncodeProgressed {
  jobId: string;
  userId: string;
  step: string;
  percent: number;
  at: number;
}

export interface EncodeOptions {
  preset: string;
  qp: number;
  container: string;
  logo: boolean;
  width: null | number;
  height: null | number;
  fps: null | number;
}

export interface EncodeRequested {
  jobId: string;
  userId: string;
  uploadId: string;
  sha256: string;
  filename: string;
  raw: boolean;
  options: EncodeOptions;
  attempt: number;
  at: number;
  webhookUrl: null | string;
}

export interface EncodeStepCompleted {
  jobId: string;
  userId: string;
  step: string;
  info: string;
  at: number;
}

export interface EncodeStepStarted {
  jobId: string;
  userId: string;
  step: string;
  worker: string;
  attempt: number;
  at: number;
}

export interface StreamActivated {
  userId: string;
  streamId: string;
  at: number;
  expiresAt: number;
}

export type DeactivationReason = "stopped" | "expired";

export interface StreamDeactivated {
  userId: string;
  streamId: string;
  reason: DeactivationReason;
  at: number;
}

export interface StreamHeartbeat {
  userId: string;
  streamId: string;
  at: number;
  expiresAt: number;
}

export interface StreamIdIssued {
  streamId: string;
  at: number;
}

export interface UploadChunkAppended {
  uploadId: string;
  userId: string;
  offset: number;
  length: number;
  sha256: string;
  at: number;
}

export interface UploadCompleted {
  uploadId: string;
  userId: string;
  sha256: string;
  size: number;
  durationSeconds: null | number;
  at: number;
}

export interface UploadCreated {
  uploadId: string;
  userId: string;
  filename: string;
  filetype: null | string;
  length: number;
  raw: boolean;
  at: number;
}

export interface UploadExpired {
  uploadId: string;
  userId: string;
  at: number;
}

export interface UploadRejected {
  uploadId: string;
  userId: string;
  reason: string;
  at: number;
}

export interface UploadTerminated {
  uploadId: string;
  userId: string;
  at: number;
}

export interface UserIdIssued {
  userId: string;
  at: number;
}

export interface UserLimitSet {
  userId: string;
  limit: number;
  at: number;
}

export type EventType =
  | "ActivationRejected"
  | "AlertCreated"
  | "AlertDeleted"
  | "AlertEmailStopped"
  | "AlertMatched"
  | "CaptionFragmentReceived"
  | "EncodeCompleted"
  | "EncodeDeduplicated"
  | "EncodeFailed"
  | "EncodeProgressed"
  | "EncodeRequested"
  | "EncodeStepCompleted"
  | "EncodeStepStarted"
  | "StreamActivated"
  | "StreamDeactivated"
  | "StreamHeartbeat"
  | "StreamIdIssued"
  | "UploadChunkAppended"
  | "UploadCompleted"
  | "UploadCreated"
  | "UploadExpired"
  | "UploadRejected"
  | "UploadTerminated"
  | "UserIdIssued"
  | "UserLimitSet";

export interface EventDataMap {
  ActivationRejected: ActivationRejected;
  AlertCreated: AlertCreated;
  AlertDeleted: AlertDeleted;
  AlertEmailStopped: AlertEmailStopped;
  AlertMatched: AlertMatched;
  CaptionFragmentReceived: CaptionFragmentReceived;
  EncodeCompleted: EncodeCompleted;
  EncodeDeduplicated: EncodeDeduplicated;
  EncodeFailed: EncodeFailed;
  EncodeProgressed: EncodeProgressed;
  EncodeRequested: EncodeRequested;
  EncodeStepCompleted: EncodeStepCompleted;
  EncodeStepStarted: EncodeStepStarted;
  StreamActivated: StreamActivated;
  StreamDeactivated: StreamDeactivated;
  StreamHeartbeat: StreamHeartbeat;
  StreamIdIssued: StreamIdIssued;
  UploadChunkAppended: UploadChunkAppended;
  UploadCompleted: UploadCompleted;
  UploadCreated: UploadCreated;
  UploadExpired: UploadExpired;
  UploadRejected: UploadRejected;
  UploadTerminated: UploadTerminated;
  UserIdIssued: UserIdIssued;
  UserLimitSet: UserLimitSet;
}

/** An event of any type. `type` tells them apart: a `switch (event.type)` narrows `data` to that event's. */
export type AnyEvent =
  | { type: "ActivationRejected"; data: ActivationRejected }
  | { type: "AlertCreated"; data: AlertCreated }
  | { type: "AlertDeleted"; data: AlertDeleted }
  | { type: "AlertEmailStopped"; data: AlertEmailStopped }
  | { type: "AlertMatched"; data: AlertMatched }
  | { type: "CaptionFragmentReceived"; data: CaptionFragmentReceived }
  | { type: "EncodeCompleted"; data: EncodeCompleted }
  | { type: "EncodeDeduplicated"; data: EncodeDeduplicated }
  | { type: "EncodeFailed"; data: EncodeFailed }
  | { type: "EncodeProgressed"; data: EncodeProgressed }
  | { type: "EncodeRequested"; data: EncodeRequested }
  | { type: "EncodeStepCompleted"; data: EncodeStepCompleted }
  | { type: "EncodeStepStarted"; data: EncodeStepStarted }
  | { type: "StreamActivated"; data: StreamActivated }
  | { type: "StreamDeactivated"; data: StreamDeactivated }
  | { type: "StreamHeartbeat"; data: StreamHeartbeat }
  | { type: "StreamIdIssued"; data: StreamIdIssued }
  | { type: "UploadChunkAppended"; data: UploadChunkAppended }
  | { type: "UploadCompleted"; data: UploadCompleted }
  | { type: "UploadCreated"; data: UploadCreated }
  | { type: "UploadExpired"; data: UploadExpired }
  | { type: "UploadRejected"; data: UploadRejected }
  | { type: "UploadTerminated"; data: UploadTerminated }
  | { type: "UserIdIssued"; data: UserIdIssued }
  | { type: "UserLimitSet"; data: UserLimitSet };

/** The events of the given types only. */
export type EventOf<T extends EventType> = { [K in T]: { type: K; data: EventDataMap[K] } }[T];
