// Analytics: per-minute rollups of the log, as a versioned projection (so it has its own consumer
// group per version, castlog-projection-analytics_vN, and rebuilds like any other read model).
//
// - Captions: fragments and words per channel per minute of the fragment's start. A station's
//   repeat (domain/captions/repeats.ts) is not counted, as every reader drops it.
//   Words are runs of letters and digits; an apostrophe or hyphen inside one keeps it one word.
// - Viewers: a user is an active viewer in minute m when at least one of their leases was running
//   at some instant of [m, m + 1 min). A lease runs from StreamActivated.at until
//   StreamDeactivated.at (stopped, or expired: then `at` is the lease's expiry), renewed by
//   heartbeats; one that ends in the instant it starts still counts in that minute. Minutes are
//   recorded as far as the log has shown the lease running; a lease not ended yet is extended by
//   readers up to min(its expiry, now).
// - Encodes: per job, the preset and the timing of its latest attempt: requested, first step
//   started, completed; failed attempts are counted.
//
// Every rollup depends on one partition's records only (a channel's captions, a user's stream
// events, a job's encode events are each in one partition), so a rebuild, which interleaves
// partitions differently, gives the same rows. The runner applies each record once; repeats from
// the relay are dropped by (stream, version).
import { sql, type Transaction } from 'kysely';
import { LastSeqs } from '../../domain/captions/repeats.ts';
import type { CaptionFragmentReceived, EventOf } from '../../schemas/types.generated.ts';
import type { Database } from '../database.ts';
import { noEventLeft, type Projection } from '../projection.ts';
import { firstTime } from '../applied-versions.ts';
import { ANALYTICS_TABLES, MINUTE, createAnalyticsTables } from './tables.ts';

const NAME = 'analytics';

const WORD = /[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu;

/** Words in a caption's text: runs of letters and digits ("don't", "well-known" are one each). */
export function countWords(text: string): number {
  let n = 0;
  for (const _ of text.matchAll(WORD)) n++;
  return n;
}

export const minuteOf = (ms: number) => Math.floor(ms / MINUTE) * MINUTE;

type Trx = Transaction<Database>;

/** Counts a batch's fragments, less the repeats; the last seq counted per station is kept in analytics_station_seqs. */
async function countCaptions(trx: Trx, frs: CaptionFragmentReceived[]): Promise<void> {
  if (!frs.length) return;
  const key = (channel: string, station: string) => `${channel}\u0000${station}`;
  const pairs = [...new Map(frs.map((d) => [key(d.channel, d.station), d])).values()];
  const { rows } = await sql<{ channel: string; station: string; last_seq: number }>`
    SELECT s.channel, s.station, s.last_seq
    FROM unnest(${pairs.map((d) => d.channel)}::text[], ${pairs.map((d) => d.station)}::text[]) AS p(channel, station)
    JOIN analytics_station_seqs s ON s.channel = p.channel AND s.station = p.station`.execute(trx);
  const seqs = new LastSeqs();
  for (const r of rows) seqs.seed(r.channel, r.station, Number(r.last_seq));
  const moved = new Map<string, { channel: string; station: string }>();
  const minutes = new Map<string, { channel: string; minute: number; fragments: number; words: number }>();
  for (const d of frs) {
    if (!seqs.admit(d)) continue;
    moved.set(key(d.channel, d.station), d);
    const minute = minuteOf(d.start);
    const mk = `${d.channel}\u0000${minute}`;
    const m = minutes.get(mk) ?? { channel: d.channel, minute, fragments: 0, words: 0 };
    m.fragments++;
    m.words += countWords(d.text);
    minutes.set(mk, m);
  }
  if (!minutes.size) return;
  const ms = [...minutes.values()];
  await sql`
    INSERT INTO analytics_caption_minutes (channel, minute_ms, fragments, words)
    SELECT * FROM unnest(${ms.map((m) => m.channel)}::text[], ${ms.map((m) => m.minute)}::bigint[],
                         ${ms.map((m) => m.fragments)}::bigint[], ${ms.map((m) => m.words)}::bigint[])
    ON CONFLICT (channel, minute_ms) DO UPDATE SET
      fragments = analytics_caption_minutes.fragments + excluded.fragments,
      words = analytics_caption_minutes.words + excluded.words`.execute(trx);
  const last = [...moved.values()].map(({ channel, station }) => ({ channel, station, seq: seqs.lastSeq(channel, station)! }));
  await sql`
    INSERT INTO analytics_station_seqs (channel, station, last_seq)
    SELECT * FROM unnest(${last.map((s) => s.channel)}::text[], ${last.map((s) => s.station)}::text[], ${last.map((s) => s.seq)}::bigint[])
    ON CONFLICT (channel, station) DO UPDATE SET last_seq = greatest(analytics_station_seqs.last_seq, excluded.last_seq)`.execute(trx);
}

/** Records that `userId` was an active viewer in every minute from that of `fromMs` to that of `toMs`. */
async function markMinutes(trx: Trx, userId: string, fromMs: number, toMs: number): Promise<void> {
  if (toMs < fromMs) return;
  await sql`
    WITH ins AS (
      INSERT INTO analytics_viewer_minutes (minute_ms, user_id)
      SELECT m, ${userId} FROM generate_series(${minuteOf(fromMs)}::bigint, ${minuteOf(toMs)}::bigint, ${MINUTE}::bigint) AS m
      ON CONFLICT DO NOTHING
      RETURNING minute_ms
    )
    INSERT INTO analytics_viewer_counts (minute_ms, viewers)
    SELECT minute_ms, 1 FROM ins
    ON CONFLICT (minute_ms) DO UPDATE SET viewers = analytics_viewer_counts.viewers + 1`.execute(trx);
}

async function openLease(trx: Trx, userId: string, streamId: string) {
  return trx
    .selectFrom('analytics_open_leases')
    .selectAll()
    .where('user_id', '=', userId)
    .where('stream_id', '=', streamId)
    .executeTakeFirst();
}

/** The lease ran up to `end` (exclusive), and at least in the instant it was last seen running. */
const endMinutes = (lease: { covered_ms: number }, end: number) => Math.max(lease.covered_ms, end - 1);

type LeaseEvent = EventOf<'StreamActivated' | 'StreamHeartbeat' | 'StreamDeactivated'>;

async function applyLease(trx: Trx, event: LeaseEvent): Promise<void> {
  const d = event.data;
  const lease = await openLease(trx, d.userId, d.streamId);
  if (event.type === 'StreamDeactivated') {
    if (!lease) return;
    await markMinutes(trx, d.userId, lease.covered_ms, endMinutes(lease, d.at));
    await trx.deleteFrom('analytics_open_leases').where('user_id', '=', d.userId).where('stream_id', '=', d.streamId).execute();
    return;
  }
  const { expiresAt } = event.data;
  if (event.type === 'StreamHeartbeat' && lease) {
    // A heartbeat is accepted only while the lease runs: it ran from its last sighting to now.
    await markMinutes(trx, d.userId, lease.covered_ms, d.at);
    await trx
      .updateTable('analytics_open_leases')
      .set({ covered_ms: d.at, expires_ms: expiresAt })
      .where('user_id', '=', d.userId)
      .where('stream_id', '=', d.streamId)
      .execute();
    return;
  }
  // An activation (or a heartbeat of a lease whose activation this log no longer holds). A lease
  // still open here was not ended in the log: it counts up to its expiry or this activation.
  if (lease) await markMinutes(trx, d.userId, lease.covered_ms, endMinutes(lease, Math.min(d.at, lease.expires_ms)));
  await markMinutes(trx, d.userId, d.at, d.at);
  const row = { started_ms: d.at, covered_ms: d.at, expires_ms: expiresAt };
  await trx
    .insertInto('analytics_open_leases')
    .values({ user_id: d.userId, stream_id: d.streamId, ...row })
    .onConflict((oc) => oc.columns(['user_id', 'stream_id']).doUpdateSet(row))
    .execute();
}

type TimedEncodeEvent = EventOf<'EncodeRequested' | 'EncodeStepStarted' | 'EncodeFailed' | 'EncodeCompleted'>;

async function applyEncode(trx: Trx, event: TimedEncodeEvent): Promise<void> {
  const { type, data: d } = event;
  switch (type) {
    case 'EncodeRequested': {
      const row = { preset: d.options.preset, attempt: d.attempt, requested_ms: d.at, started_ms: null, completed_ms: null };
      await trx
        .insertInto('analytics_encodes')
        .values({ job_id: d.jobId, ...row, failures: 0 })
        .onConflict((oc) => oc.column('job_id').doUpdateSet(row))
        .execute();
      break;
    }
    case 'EncodeStepStarted':
      // The first step of the attempt; a step redone after a takeover does not restart the clock.
      await trx
        .updateTable('analytics_encodes')
        .set({ started_ms: sql<number>`coalesce(started_ms, ${d.at}::bigint)` })
        .where('job_id', '=', d.jobId)
        .where('attempt', '=', d.attempt)
        .execute();
      break;
    case 'EncodeFailed':
      await trx
        .updateTable('analytics_encodes')
        .set({ failures: sql<number>`failures + 1` })
        .where('job_id', '=', d.jobId)
        .execute();
      break;
    case 'EncodeCompleted':
      await trx.updateTable('analytics_encodes').set({ completed_ms: d.at }).where('job_id', '=', d.jobId).execute();
      break;
    default:
      noEventLeft(event);
  }
}

type AnalyticsTopic = 'captions' | 'streams' | 'encodes';

export const analyticsProjection: Projection<AnalyticsTopic> = {
  name: NAME,
  topics: ['captions', 'streams', 'encodes'],
  views: ANALYTICS_TABLES,
  createTables: createAnalyticsTables,
  async apply(trx, records) {
    // Captions are counted a batch at a time; the rest one by one, each (stream, version) once.
    await countCaptions(
      trx,
      records.flatMap((r) => (r.event.type === 'CaptionFragmentReceived' ? [r.event.data] : [])),
    );
    for (const r of records) {
      const event = r.event;
      switch (event.type) {
        case 'CaptionFragmentReceived':
          break; // counted above
        case 'StreamActivated':
        case 'StreamHeartbeat':
        case 'StreamDeactivated':
          if (await firstTime(trx, NAME, r)) await applyLease(trx, event);
          break;
        case 'EncodeRequested':
        case 'EncodeStepStarted':
        case 'EncodeFailed':
        case 'EncodeCompleted':
          if (await firstTime(trx, NAME, r)) await applyEncode(trx, event);
          break;
        case 'UserIdIssued':
        case 'StreamIdIssued':
        case 'UserLimitSet':
        case 'ActivationRejected':
        case 'EncodeDeduplicated':
        case 'EncodeProgressed':
        case 'EncodeStepCompleted':
          break; // nothing analytics counts
        default:
          noEventLeft(event);
      }
    }
  },
};
