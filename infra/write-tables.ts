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

/** A match of an alert: the matcher's outbox (published to Kafka once) and the match history. */
export interface AlertMatchesTable {
  alert_id: string;
  partition: number;
  offset: number;
  user_id: string;
  channel: string;
  position: string;
  station: string;
  start_ms: number;
  text: string;
  snippet: string;
  matched_at_ms: number;
  published: Generated<boolean>;
}

export type DeliveryState = 'pending' | 'sending' | 'sent' | 'failed' | 'interrupted';

/** An e-mail or webhook to send, once per cause ("alert:<id>:<p>:<o>", "encode:<job>:<event>"). */
export interface DeliveriesTable {
  id: Generated<number>;
  kind: 'email' | 'webhook';
  cause: string;
  user_id: string;
  alert_id: string | null;
  job_id: string | null;
  target: string;
  payload: unknown;
  state: Generated<DeliveryState>;
  attempts: Generated<number>;
  next_attempt_at_ms: number;
  created_at_ms: number;
  sent_at_ms: number | null;
  last_error: string | null;
  /** The notifier instance sending it (state 'sending'), and since when. */
  claimed_by: string | null;
  claimed_at_ms: number | null;
  /** No retry after this; null: created_at_ms + the retry window (a redeliver sets a new one). */
  retry_until_ms: number | null;
  /** Attempts since it was created or redelivered: the exponent of its backoff. */
  series_attempts: Generated<number>;
}

export interface DeliveryAttemptsTable {
  delivery_id: number;
  attempt: number;
  at_ms: number;
  duration_ms: number;
  status: number | null;
  error: string | null;
}

/** When an alert's next e-mail may leave (at most one per ALERT_EMAIL_INTERVAL). */
export interface AlertEmailPacingTable {
  alert_id: string;
  next_email_at_ms: number;
}

/** An attempt of an encode job as requested, with the webhook it asked for (the notifier's record). */
export interface EncodeRequestsTable {
  job_id: string;
  attempt: number;
  /** The EncodeRequested's version in the job's stream. */
  stream_version: number;
  user_id: string;
  webhook_url: string | null;
}

export interface WriteTables {
  stations: StationsTable;
  events: EventsTable;
  snapshots: SnapshotsTable;
  relay_checkpoints: RelayCheckpointsTable;
  alert_matches: AlertMatchesTable;
  deliveries: DeliveriesTable;
  delivery_attempts: DeliveryAttemptsTable;
  alert_email_pacing: AlertEmailPacingTable;
  encode_requests: EncodeRequestsTable;
}

/** A database client that sees the write side's tables (any castlog database client is one). */
export type WriteDb = Kysely<WriteTables>;
