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
import { firstTimes } from '../applied-versions.ts';
import { ANALYTICS_TABLES, MINUTE, createAnalyticsTables } from './tables.ts';

const NAME = 'analytics';

const WORD = /[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu;

/** Words in a caption's text: runs of letters and digits ("don't", "well-known" are one each). */
export function countWords(text: string): number {
  // test in a loop, not exec or matchAll: it moves lastIndex past each word without making a match
  // array and a string per word (a quarter of a projector's allocations, and its collections, were
  // exec's), and it is faster per caption too.
  let n = 0;
  WORD.lastIndex = 0;
  while (WORD.test(text)) n++;
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

type LeaseEvent = EventOf<'StreamActivated' | 'StreamHeartbeat' | 'StreamDeactivated'>;

interface OpenLease {
  started_ms: number;
  covered_ms: number;
  expires_ms: number;
}

/** The lease ran up to `end` (exclusive), and at least in the instant it was last seen running. */
const endMinutes = (lease: { covered_ms: number }, end: number) => Math.max(lease.covered_ms, end - 1);

/**
 * A batch's lease events in four round trips whatever its size: the open leases they touch are
 * read at once, the events applied to them here in log order, then the minutes each user watched,
 * and the leases closed and still open, are written a kind at a time.
 */
async function applyLeases(trx: Trx, events: LeaseEvent[]): Promise<void> {
  if (!events.length) return;
  const key = (userId: string, streamId: string) => `${userId}\u0000${streamId}`;
  const touched = [...new Map(events.map(({ data: d }) => [key(d.userId, d.streamId), d])).values()];
  const { rows } = await sql<OpenLease & { user_id: string; stream_id: string }>`
    SELECT l.user_id, l.stream_id, l.started_ms, l.covered_ms, l.expires_ms FROM analytics_open_leases l
    JOIN unnest(${touched.map((d) => d.userId)}::text[], ${touched.map((d) => d.streamId)}::text[]) AS b(u, s)
      ON l.user_id = b.u AND l.stream_id = b.s`.execute(trx);
  /** Per (user, stream): the open lease, or null once it has closed in this batch. */
  const leases = new Map<string, OpenLease | null>(rows.map((r) => [key(r.user_id, r.stream_id), r]));
  const changed = new Map<string, { userId: string; streamId: string }>();
  const watched = new Map<string, { userId: string; minute: number }>();
  /** `userId` was an active viewer in every minute from that of `fromMs` to that of `toMs`. */
  const mark = (userId: string, fromMs: number, toMs: number) => {
    for (let m = minuteOf(fromMs); m <= minuteOf(toMs) && toMs >= fromMs; m += MINUTE)
      watched.set(`${userId}\u0000${m}`, { userId, minute: m });
  };
  for (const event of events) {
    const d = event.data;
    const k = key(d.userId, d.streamId);
    const lease = leases.get(k) ?? undefined;
    changed.set(k, { userId: d.userId, streamId: d.streamId });
    if (event.type === 'StreamDeactivated') {
      if (!lease) continue;
      mark(d.userId, lease.covered_ms, endMinutes(lease, d.at));
      leases.set(k, null);
      continue;
    }
    const { expiresAt } = event.data;
    if (event.type === 'StreamHeartbeat' && lease) {
      // A heartbeat is accepted only while the lease runs: it ran from its last sighting to now.
      mark(d.userId, lease.covered_ms, d.at);
      leases.set(k, { ...lease, covered_ms: d.at, expires_ms: expiresAt });
      continue;
    }
    // An activation (or a heartbeat of a lease whose activation this log no longer holds). A lease
    // still open here was not ended in the log: it counts up to its expiry or this activation.
    if (lease) mark(d.userId, lease.covered_ms, endMinutes(lease, Math.min(d.at, lease.expires_ms)));
    mark(d.userId, d.at, d.at);
    leases.set(k, { started_ms: d.at, covered_ms: d.at, expires_ms: expiresAt });
  }
  const w = [...watched.values()];
  if (w.length)
    await sql`
      WITH ins AS (
        INSERT INTO analytics_viewer_minutes (minute_ms, user_id)
        SELECT * FROM unnest(${w.map((x) => x.minute)}::bigint[], ${w.map((x) => x.userId)}::text[])
        ON CONFLICT DO NOTHING
        RETURNING minute_ms
      )
      INSERT INTO analytics_viewer_counts (minute_ms, viewers)
      SELECT minute_ms, count(*) FROM ins GROUP BY minute_ms
      ON CONFLICT (minute_ms) DO UPDATE SET viewers = analytics_viewer_counts.viewers + excluded.viewers`.execute(trx);
  const closed = [...changed].filter(([k]) => leases.get(k) === null).map(([, c]) => c);
  const open = [...changed].flatMap(([k, c]) => {
    const l = leases.get(k);
    return l ? [{ ...c, ...l }] : [];
  });
  if (closed.length)
    await sql`
      DELETE FROM analytics_open_leases l
      USING unnest(${closed.map((c) => c.userId)}::text[], ${closed.map((c) => c.streamId)}::text[]) AS b(u, s)
      WHERE l.user_id = b.u AND l.stream_id = b.s`.execute(trx);
  if (open.length)
    await sql`
      INSERT INTO analytics_open_leases (user_id, stream_id, started_ms, covered_ms, expires_ms)
      SELECT * FROM unnest(${open.map((l) => l.userId)}::text[], ${open.map((l) => l.streamId)}::text[],
                           ${open.map((l) => l.started_ms)}::bigint[], ${open.map((l) => l.covered_ms)}::bigint[],
                           ${open.map((l) => l.expires_ms)}::bigint[])
      ON CONFLICT (user_id, stream_id) DO UPDATE SET
        started_ms = excluded.started_ms, covered_ms = excluded.covered_ms, expires_ms = excluded.expires_ms`.execute(trx);
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
  // Per-minute rollups: a quarter of a second later is nothing to their readers. Not on captions:
  // there it shares the caption history's reader (each caption fetched and decoded once), and
  // captions come in numbers that fill batches anyway; decisions at 500/s come one or two a fetch.
  lingerMs: { streams: 250, encodes: 250 },
  async apply(trx, records) {
    // Captions are counted a batch at a time, leases likewise; encodes (a few per job) one by one.
    await countCaptions(
      trx,
      records.flatMap((r) => (r.event.type === 'CaptionFragmentReceived' ? [r.event.data] : [])),
    );
    const leases: LeaseEvent[] = [];
    const encodes: TimedEncodeEvent[] = [];
    const relayed = records.filter((r) => r.event.type !== 'CaptionFragmentReceived');
    // Each (stream, version) once: the relay publishes at least once.
    for (const r of await firstTimes(trx, NAME, relayed)) {
      const event = r.event;
      switch (event.type) {
        case 'CaptionFragmentReceived':
          break; // counted above
        case 'StreamActivated':
        case 'StreamHeartbeat':
        case 'StreamDeactivated':
          leases.push(event);
          break;
        case 'EncodeRequested':
        case 'EncodeStepStarted':
        case 'EncodeFailed':
        case 'EncodeCompleted':
          encodes.push(event);
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
    await applyLeases(trx, leases);
    for (const event of encodes) await applyEncode(trx, event);
  },
};
