// The write side's tables: capture stations' keys, the event store of decided events with its
// snapshots, and the relay's checkpoint. The read models' tables are projections/database.ts.
import type { Generated, Kysely } from 'kysely';

export interface StationsTable {
  name: string;
  key_hash: string;
  created_at: Generated<Date>;
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

export interface WriteTables {
  stations: StationsTable;
  events: EventsTable;
  snapshots: SnapshotsTable;
  relay_checkpoints: RelayCheckpointsTable;
}

/** A database client that sees the write side's tables (any castlog database client is one). */
export type WriteDb = Kysely<WriteTables>;
