// Analytics from the analytics projection's rollups: captions per channel per minute, active viewers
// per minute, encode durations per preset. Aggregates only: no user or job is named.
import type { FastifyPluginAsync } from 'fastify';
import { sql } from 'kysely';
import { CHANNEL_ID_RULE, isChannelId } from '../../domain/captions/channel.ts';
import { parseTime } from '../../domain/time.ts';
import type { Db } from '../../infra/db.ts';
import { analyticsProjection } from '../../projections/analytics/projection.ts';
import { MINUTE } from '../../projections/analytics/tables.ts';
import { ensureRegistered } from '../../projections/versions.ts';
import { badRequest } from './errors.ts';
import type { Reads } from './reads.ts';

/** The longest range a per-minute series may cover: 31 days. */
export const MAX_MINUTES = 31 * 24 * 60;
const DEFAULT_MINUTES = 60;

interface Range {
  from?: string;
  to?: string;
}

/** The minutes overlapping [from, to): to defaults to now, from to an hour before to. */
function minuteRange(q: Range, now: number): { first: number; last: number } {
  const to = parseTime('to', q.to) ?? now;
  const from = parseTime('from', q.from) ?? to - DEFAULT_MINUTES * MINUTE;
  if (to <= from) throw badRequest('to', 'must be after from');
  const first = Math.floor(from / MINUTE) * MINUTE;
  const last = Math.ceil(to / MINUTE) * MINUTE - MINUTE;
  if ((last - first) / MINUTE + 1 > MAX_MINUTES) throw badRequest('to', `the range may cover at most ${MAX_MINUTES} minutes (31 days)`);
  return { first, last };
}

const iso = (ms: number) => new Date(ms).toISOString();
const rangeQuery = { from: { type: 'string' }, to: { type: 'string' } } as const;

export function analyticsRoutes(deps: { db: Db; reads: Reads }): FastifyPluginAsync {
  const { db, reads } = deps;
  // The views exist once the projection is registered; the projector does it, but the API may
  // answer first.
  let registered: Promise<void> | undefined;
  const ready = () =>
    (registered ??= ensureRegistered(db, analyticsProjection).catch((err) => {
      registered = undefined;
      throw err;
    }));

  return async (app) => {

  app.get<{ Querystring: Range & { channel?: string } }>(
    '/captions',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { ...rangeQuery, channel: { type: 'string' } } } } },
    async (req) => {
      const { channel } = req.query;
      if (channel !== undefined && !isChannelId(channel)) throw badRequest('channel', CHANNEL_ID_RULE);
      const { first, last } = minuteRange(req.query, Date.now());
      await ready();
      const { rows } = await reads.run((rdb) => sql<{ minute_ms: number; fragments: number; words: number }>`
        SELECT m.minute_ms, coalesce(sum(c.fragments), 0)::bigint AS fragments, coalesce(sum(c.words), 0)::bigint AS words
        FROM generate_series(${first}::bigint, ${last}::bigint, ${MINUTE}::bigint) AS m(minute_ms)
        LEFT JOIN analytics_caption_minutes c ON c.minute_ms = m.minute_ms ${channel === undefined ? sql`` : sql`AND c.channel = ${channel}`}
        GROUP BY m.minute_ms ORDER BY m.minute_ms`.execute(rdb));
      const minutes = rows.map((r) => ({ minute: iso(Number(r.minute_ms)), fragments: Number(r.fragments), words: Number(r.words) }));
      return {
        channel: channel ?? null,
        from: iso(first),
        to: iso(last + MINUTE),
        total: { fragments: minutes.reduce((n, m) => n + m.fragments, 0), words: minutes.reduce((n, m) => n + m.words, 0) },
        minutes,
      };
    },
  );

  app.get<{ Querystring: Range }>(
    '/viewers',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: rangeQuery } } },
    async (req) => {
      const now = Date.now();
      const { first, last } = minuteRange(req.query, now);
      await ready();
      // Recorded minutes, plus leases not ended in the log yet, up to min(their expiry, now), for
      // users not already counted in that minute.
      const { rows } = await reads.run((rdb) => sql<{ minute_ms: number; viewers: number }>`
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
        ORDER BY m.minute_ms`.execute(rdb));
      const minutes = rows.map((r) => ({ minute: iso(Number(r.minute_ms)), viewers: r.viewers }));
      return { from: iso(first), to: iso(last + MINUTE), peak: minutes.reduce((n, m) => Math.max(n, m.viewers), 0), minutes };
    },
  );

  app.get<{ Querystring: Range & { preset?: string } }>(
    '/encodes',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { ...rangeQuery, preset: { type: 'string', pattern: '^[a-z]{1,32}$' } } } } },
    async (req) => {
      const from = parseTime('from', req.query.from);
      const to = parseTime('to', req.query.to);
      if (from !== undefined && to !== undefined && to <= from) throw badRequest('to', 'must be after from');
      await ready();
      // A job's time is its completion, or while it has none, its latest request.
      const at = sql`coalesce(completed_ms, requested_ms)`;
      // A job completed at once with an output another encode made ran no step: it is counted
      // as reused, not timed as an encode.
      const done = sql`completed_ms IS NOT NULL AND started_ms IS NOT NULL`;
      const reused = sql`completed_ms IS NOT NULL AND started_ms IS NULL`;
      const encode = sql`(completed_ms - started_ms)`;
      const total = sql`(completed_ms - requested_ms)`;
      const { rows } = await reads.run((rdb) => sql<{
        preset: string; count: number; reused: number; failed: number; p50: number | null; avg: number | null; max: number | null;
        total_p50: number | null; total_avg: number | null; total_max: number | null;
      }>`
        SELECT preset, count(*) FILTER (WHERE ${done})::int AS count, count(*) FILTER (WHERE ${reused})::int AS reused, coalesce(sum(failures), 0)::int AS failed,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY ${encode}) FILTER (WHERE ${done}) AS p50,
               avg(${encode}) FILTER (WHERE ${done})::float8 AS avg, max(${encode}) FILTER (WHERE ${done}) AS max,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY ${total}) FILTER (WHERE ${done}) AS total_p50,
               avg(${total}) FILTER (WHERE ${done})::float8 AS total_avg, max(${total}) FILTER (WHERE ${done}) AS total_max
        FROM analytics_encodes
        WHERE true
          ${from === undefined ? sql`` : sql`AND ${at} >= ${from}`}
          ${to === undefined ? sql`` : sql`AND ${at} < ${to}`}
          ${req.query.preset === undefined ? sql`` : sql`AND preset = ${req.query.preset}`}
        GROUP BY preset ORDER BY preset`.execute(rdb));
      const ms = (v: number | null) => (v === null ? null : Math.round(Number(v)));
      return {
        from: from === undefined ? null : iso(from),
        to: to === undefined ? null : iso(to),
        presets: rows.map((r) => ({
          preset: r.preset,
          count: r.count,
          reused: r.reused,
          failed: r.failed,
          p50Ms: ms(r.p50),
          avgMs: ms(r.avg),
          maxMs: ms(r.max),
          total: { p50Ms: ms(r.total_p50), avgMs: ms(r.total_avg), maxMs: ms(r.total_max) },
        })),
      };
    },
  );
}
}
