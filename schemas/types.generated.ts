// Generated from schemas/avro by `npm run schemas:generate`; do not edit.

export interface ActivationRejected {
  userId: string;
  streamId: string;
  limit: number;
  active: Array<string>;
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

export interface UserIdIssued {
  userId: string;
  at: number;
}

export interface UserLimitSet {
  userId: string;
  limit: number;
  at: number;
}

export type EventType = "ActivationRejected" | "CaptionFragmentReceived" | "StreamActivated" | "StreamDeactivated" | "StreamHeartbeat" | "StreamIdIssued" | "UserIdIssued" | "UserLimitSet";

export interface EventDataMap {
  ActivationRejected: ActivationRejected;
  CaptionFragmentReceived: CaptionFragmentReceived;
  StreamActivated: StreamActivated;
  StreamDeactivated: StreamDeactivated;
  StreamHeartbeat: StreamHeartbeat;
  StreamIdIssued: StreamIdIssued;
  UserIdIssued: UserIdIssued;
  UserLimitSet: UserLimitSet;
}
