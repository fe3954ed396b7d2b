// Generated from schemas/avro by `npm run schemas:generate`; do not edit.

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

export type EventType = "CaptionFragmentReceived";

export interface EventDataMap {
  CaptionFragmentReceived: CaptionFragmentReceived;
}
