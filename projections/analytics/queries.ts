// How the apps read the analytics rollups, through the public views. Minutes are given as the
// first and last minute (ms, multiples of MINUTE) of a range; every minute in it gets a row.
import { sql, type Kysely } from 'kysely';
import type { Database } from '../database.ts';
import { MINUTE } from './tables.ts';

type Db = Kysely<Database>;

/** Fragments and words per minute whose captions start in it, of one channel or (null) all. */
export async function captionMinutes(
  db: Db,
  first: number,
  last: number,
  channel: string | null,
): Promise<{ minute_ms: number; fragments: number; words: number }[]> {
  const { rows } = await sql<{ minute_ms: number; fragments: number; words: number }>`
    SELECT m.minute_ms, coalesce(sum(c.fragments), 0)::bigint AS fragments, coalesce(sum(c.words), 0)::bigint AS words
    FROM generate_series(${first}::bigint, ${last}::bigint, ${MINUTE}::bigint) AS m(minute_ms)
    LEFT JOIN analytics_caption_minutes c ON c.minute_ms = m.minute_ms ${channel === null ? sql`` : sql`AND c.channel = ${channel}`}
    GROUP BY m.minute_ms ORDER BY m.minute_ms`.execute(db);
  return rows;
}

/**
 * Active viewers per minute: the minutes recorded, plus leases not ended in the log yet, up to
 * min(their expiry, now), for users not already counted in that minute.
 */
export async function viewerMinutes(db: Db, first: number, last: number, now: number): Promise<{ minute_ms: number; viewers: number }[]> {
  const { rows } = await sql<{ minute_ms: number; viewers: number }>`
    WITH open AS (
      SELECT DISTINCT m AS minute_ms, l.user_id
      FROM analytics_open_leases l,
           generate_series(greatest((l.covered_ms / ${MINUTE}) * ${MINUTE}, ${first}::bigint),
                           least(((least(l.expires_ms, ${now}::bigint) - 1) / ${MINUTE}) * ${MINUTE}, ${last}::bigint),
                           ${MINUTE}::bigint) AS m
      WHERE least(l.expires_ms, ${now}::bigint) > l.covered_ms
    ), extra AS (
      SELECT o.minute_ms, count(*)::int AS n FROM open o
      WHERE NOT EXISTS (SELECT 1 FROM analytics_viewer_minutes v WHERE v.minute_ms = o.minute_ms AND v.user_id = o.user_id)
      GROUP BY o.minute_ms
    )
    SELECT m.minute_ms, (coalesce(c.viewers, 0) + coalesce(e.n, 0))::int AS viewers
    FROM generate_series(${first}::bigint, ${last}::bigint, ${MINUTE}::bigint) AS m(minute_ms)
    LEFT JOIN analytics_viewer_counts c ON c.minute_ms = m.minute_ms
    LEFT JOIN extra e ON e.minute_ms = m.minute_ms
    ORDER BY m.minute_ms`.execute(db);
  return rows;
}

/** Per preset: encodes timed, reused outputs, failures, and encode and total durations (ms). */
export interface PresetTimings {
  preset: string;
  count: number;
  reused: number;
  failed: number;
  p50: number | null;
  avg: number | null;
  max: number | null;
  total_p50: number | null;
  total_avg: number | null;
  total_max: number | null;
}

/** Encode timings per preset of the jobs whose time (completion, else latest request) is in [from, to). */
export async function encodeTimings(db: Db, q: { from?: number; to?: number; preset?: string }): Promise<PresetTimings[]> {
  const at = sql`coalesce(completed_ms, requested_ms)`;
  // A job completed at once with an output another encode made ran no step: it is counted
  // as reused, not timed as an encode.
  const done = sql`completed_ms IS NOT NULL AND started_ms IS NOT NULL`;
  const reused = sql`completed_ms IS NOT NULL AND started_ms IS NULL`;
  const encode = sql`(completed_ms - started_ms)`;
  const total = sql`(completed_ms - requested_ms)`;
  const { rows } = await sql<PresetTimings>`
    SELECT preset, count(*) FILTER (WHERE ${done})::int AS count, count(*) FILTER (WHERE ${reused})::int AS reused,
           coalesce(sum(failures), 0)::int AS failed,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ${encode}) FILTER (WHERE ${done}) AS p50,
           avg(${encode}) FILTER (WHERE ${done})::float8 AS avg, max(${encode}) FILTER (WHERE ${done}) AS max,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY ${total}) FILTER (WHERE ${done}) AS total_p50,
           avg(${total}) FILTER (WHERE ${done})::float8 AS total_avg, max(${total}) FILTER (WHERE ${done}) AS total_max
    FROM analytics_encodes
    WHERE true
      ${q.from === undefined ? sql`` : sql`AND ${at} >= ${q.from}`}
      ${q.to === undefined ? sql`` : sql`AND ${at} < ${q.to}`}
      ${q.preset === undefined ? sql`` : sql`AND preset = ${q.preset}`}
    GROUP BY preset ORDER BY preset`.execute(db);
  return rows;
}
