// The one description of every table, so a wrong column is a compile error.
import type { ColumnType, Generated } from 'kysely';
import type { AnalyticsDatabase } from './analytics/tables.ts';

export interface StationsTable {
  name: string;
  key_hash: string;
  created_at: Generated<Date>;
}

export interface CaptionFragmentsTable {
  channel: string;
  partition: number;
  offset: number;
  station: string;
  seq: number;
  text: string;
  start_ms: number;
  end_ms: number;
  mode: string | null;
  lang: string | null;
  received_at_ms: number;
}

export interface ChannelsTable {
  id: string;
  fragment_count: number;
  last_fragment_ms: number;
  last_position: string;
}

export interface ProjectionPositionsTable {
  projection: string;
  topic: string;
  partition: number;
  /** Offset of the next record to apply. */
  next_offset: number;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface EventsTable {
  position: Generated<number>;
  tx_id: Generated<string>;
  stream: string;
  version: number;
  type: string;
  key: string;
  data: Buffer;
  meta: unknown;
}

export interface SnapshotsTable {
  stream: string;
  version: number;
  state: unknown;
}

export interface RelayCheckpointsTable {
  name: string;
  tx_id: string;
  position: number;
}

export interface AppliedVersionsTable {
  projection: string;
  stream: string;
  version: number;
}

export interface ViewersTable {
  user_id: string;
  stream_limit: number | null;
  issued_at_ms: number;
}

export interface ViewerLeasesTable {
  user_id: string;
  stream_id: string;
  activated_at_ms: number;
  expires_at_ms: number;
}

export interface UploadsTable {
  upload_id: string;
  user_id: string;
  filename: string;
  filetype: string | null;
  raw: boolean;
  length: number;
  offset: number;
  status: string;
  sha256: string | null;
  duration_seconds: number | null;
  reason: string | null;
  created_at_ms: number;
  updated_at_ms: number;
}

export interface EncodeJobsTable {
  job_id: string;
  user_id: string;
  upload_id: string;
  sha256: string;
  filename: string;
  raw: boolean;
  options: ColumnType<unknown, string, string>;
  status: string;
  attempt: number;
  step: string | null;
  percent: number;
  steps_done: ColumnType<string[], string, string>;
  worker: string | null;
  output_sha256: string | null;
  output_size: number | null;
  error: string | null;
  stderr_tail: string | null;
  requested_at_ms: number;
  updated_at_ms: number;
}

export interface EncodeJobUsersTable {
  job_id: string;
  user_id: string;
  upload_id: string;
  at_ms: number;
}

export interface Database extends AnalyticsDatabase {
  uploads: UploadsTable;
  encode_jobs: EncodeJobsTable;
  encode_job_users: EncodeJobUsersTable;
  applied_versions: AppliedVersionsTable;
  viewers: ViewersTable;
  viewer_leases: ViewerLeasesTable;
  events: EventsTable;
  snapshots: SnapshotsTable;
  relay_checkpoints: RelayCheckpointsTable;
  stations: StationsTable;
  caption_fragments: CaptionFragmentsTable;
  channels: ChannelsTable;
  projection_positions: ProjectionPositionsTable;
}
