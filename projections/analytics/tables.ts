// The analytics read model's tables: per-minute rollups of the log. Each projection version
// creates them in its own schema; readers use the public views of the serving version.
import type { Kysely } from 'kysely';
import { createAppliedVersions } from '../applied-versions.ts';

export const ANALYTICS_TABLES = [
  'analytics_caption_minutes',
  'analytics_viewer_minutes',
  'analytics_viewer_counts',
  'analytics_open_leases',
  'analytics_encodes',
];

export const MINUTE = 60_000;

/** Fragments and words of one channel whose caption starts in one minute. */
export interface AnalyticsCaptionMinutesTable {
  channel: string;
  minute_ms: number;
  fragments: number;
  words: number;
}

/** The last seq counted per station and channel: a fragment not above it is a station's retry. */
export interface AnalyticsStationSeqsTable {
  channel: string;
  station: string;
  last_seq: number;
}

/** One row per user and minute in which the user had at least one lease running. */
export interface AnalyticsViewerMinutesTable {
  minute_ms: number;
  user_id: string;
}

/** The rollup of analytics_viewer_minutes: distinct active viewers per minute. */
export interface AnalyticsViewerCountsTable {
  minute_ms: number;
  viewers: number;
}

/** Leases not ended yet: counted up to covered_ms; readers extend them to min(expires, now). */
export interface AnalyticsOpenLeasesTable {
  user_id: string;
  stream_id: string;
  started_ms: number;
  /** The last instant the lease is known to have been running (its activation or last heartbeat). */
  covered_ms: number;
  expires_ms: number;
}

/** Per encode job, its preset and the timing of its latest attempt. */
export interface AnalyticsEncodesTable {
  job_id: string;
  preset: string;
  attempt: number;
  requested_ms: number;
  /** The first step started in this attempt. */
  started_ms: number | null;
  completed_ms: number | null;
  /** Attempts of this job that failed. */
  failures: number;
}

/** Merged into projections/database.ts's Database. */
export interface AnalyticsDatabase {
  analytics_caption_minutes: AnalyticsCaptionMinutesTable;
  analytics_station_seqs: AnalyticsStationSeqsTable;
  analytics_viewer_minutes: AnalyticsViewerMinutesTable;
  analytics_viewer_counts: AnalyticsViewerCountsTable;
  analytics_open_leases: AnalyticsOpenLeasesTable;
  analytics_encodes: AnalyticsEncodesTable;
}

export async function createAnalyticsTables(db: Kysely<any>): Promise<void> {
  // Stream-limit and encode events come through the relay, at least once: repeats are dropped by
  // (stream, version).
  await createAppliedVersions(db);
  await db.schema
    .createTable('analytics_caption_minutes')
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('minute_ms', 'bigint', (c) => c.notNull())
    .addColumn('fragments', 'bigint', (c) => c.notNull())
    .addColumn('words', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('analytics_caption_minutes_pk', ['channel', 'minute_ms'])
    .execute();
  // All channels over a time range.
  await db.schema.createIndex('analytics_caption_minutes_by_minute').on('analytics_caption_minutes').column('minute_ms').execute();
  await db.schema
    .createTable('analytics_station_seqs')
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('station', 'text', (c) => c.notNull())
    .addColumn('last_seq', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('analytics_station_seqs_pk', ['channel', 'station'])
    .execute();
  await db.schema
    .createTable('analytics_viewer_minutes')
    .addColumn('minute_ms', 'bigint', (c) => c.notNull())
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('analytics_viewer_minutes_pk', ['minute_ms', 'user_id'])
    .execute();
  await db.schema
    .createTable('analytics_viewer_counts')
    .addColumn('minute_ms', 'bigint', (c) => c.primaryKey())
    .addColumn('viewers', 'integer', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('analytics_open_leases')
    .addColumn('user_id', 'text', (c) => c.notNull())
    .addColumn('stream_id', 'text', (c) => c.notNull())
    .addColumn('started_ms', 'bigint', (c) => c.notNull())
    .addColumn('covered_ms', 'bigint', (c) => c.notNull())
    .addColumn('expires_ms', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('analytics_open_leases_pk', ['user_id', 'stream_id'])
    .execute();
  await db.schema
    .createTable('analytics_encodes')
    .addColumn('job_id', 'text', (c) => c.primaryKey())
    .addColumn('preset', 'text', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('requested_ms', 'bigint', (c) => c.notNull())
    .addColumn('started_ms', 'bigint')
    .addColumn('completed_ms', 'bigint')
    .addColumn('failures', 'integer', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('analytics_encodes_by_completion').on('analytics_encodes').columns(['preset', 'completed_ms']).execute();
}
