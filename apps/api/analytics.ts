// Analytics from the analytics projection's rollups: captions per channel per minute, active viewers
// per minute, encode durations per preset. Aggregates only: no user or job is named.
import type { FastifyPluginAsync } from 'fastify';
import { CHANNEL_ID_RULE, isChannelId } from '../../domain/captions/channel.ts';
import { parseTime } from '../../domain/time.ts';
import { captionMinutes, encodeTimings, viewerMinutes } from '../../projections/analytics/queries.ts';
import { MINUTE } from '../../projections/analytics/tables.ts';
import { badRequest } from './errors.ts';
import type { Reads } from './reads.ts';
import { json, nullableInteger, nullableString, obj } from './api-schemas.ts';

const iso8601 = { type: 'string', format: 'date-time' };

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

/** The views exist before these answer: the api registers every projection before it listens (main.ts). */
export function analyticsRoutes(deps: { reads: Reads }): FastifyPluginAsync {
  const { reads } = deps;

  return async (app) => {
    app.get<{ Querystring: Range & { channel?: string } }>(
      '/captions',
      {
        schema: {
          summary: 'Captions per minute (of one channel or all)',
          response: {
            200: json(
              'Per minute, and the total',
              obj({
                channel: nullableString,
                from: iso8601,
                to: iso8601,
                total: obj({ fragments: { type: 'integer' }, words: { type: 'integer' } }),
                minutes: { type: 'array', items: obj({ minute: iso8601, fragments: { type: 'integer' }, words: { type: 'integer' } }) },
              }),
            ),
          },
          querystring: { type: 'object', additionalProperties: false, properties: { ...rangeQuery, channel: { type: 'string' } } },
        },
      },
      async (req) => {
        const { channel } = req.query;
        if (channel !== undefined && !isChannelId(channel)) throw badRequest('channel', CHANNEL_ID_RULE);
        const { first, last } = minuteRange(req.query, Date.now());
        const rows = await reads.run((rdb) => captionMinutes(rdb, first, last, channel ?? null));
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
      {
        schema: {
          summary: 'Active viewers per minute',
          response: {
            200: json(
              'Per minute, and the peak',
              obj({
                from: iso8601,
                to: iso8601,
                peak: { type: 'integer' },
                minutes: { type: 'array', items: obj({ minute: iso8601, viewers: { type: 'integer' } }) },
              }),
            ),
          },
          querystring: { type: 'object', additionalProperties: false, properties: rangeQuery },
        },
      },
      async (req) => {
        const now = Date.now();
        const { first, last } = minuteRange(req.query, now);
        const rows = await reads.run((rdb) => viewerMinutes(rdb, first, last, now));
        const minutes = rows.map((r) => ({ minute: iso(Number(r.minute_ms)), viewers: r.viewers }));
        return { from: iso(first), to: iso(last + MINUTE), peak: minutes.reduce((n, m) => Math.max(n, m.viewers), 0), minutes };
      },
    );

    app.get<{ Querystring: Range & { preset?: string } }>(
      '/encodes',
      {
        schema: {
          summary: 'Encode durations per preset',
          response: {
            200: json(
              'Per preset: counts and times',
              obj({
                from: nullableString,
                to: nullableString,
                presets: {
                  type: 'array',
                  items: obj({
                    preset: { type: 'string' },
                    count: { type: 'integer' },
                    reused: { type: 'integer' },
                    failed: { type: 'integer' },
                    p50Ms: nullableInteger,
                    avgMs: nullableInteger,
                    maxMs: nullableInteger,
                    total: obj({ p50Ms: nullableInteger, avgMs: nullableInteger, maxMs: nullableInteger }),
                  }),
                },
              }),
            ),
          },
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: { ...rangeQuery, preset: { type: 'string', pattern: '^[a-z]{1,32}$' } },
          },
        },
      },
      async (req) => {
        const from = parseTime('from', req.query.from);
        const to = parseTime('to', req.query.to);
        if (from !== undefined && to !== undefined && to <= from) throw badRequest('to', 'must be after from');
        const rows = await reads.run((rdb) => encodeTimings(rdb, { from, to, preset: req.query.preset }));
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
  };
}
