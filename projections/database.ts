// The one description of every table, so a wrong column is a compile error.
import type { ColumnType, Generated } from 'kysely';

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

export interface Database {
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
