// Scenario: rebuilding the captions read model from offset 0. N events go to Kafka, the real
// projector builds v1, then `rebuild` (as `castlog projections rebuild captions` does) creates v2
// and the same projector builds it beside v1 and swaps it in; timed from the request to the swap.
// Baselines in the same run: the projector building v1 from the same log, and a COPY of the same
// rows into the table the catch-up writes (the version's own, before its readers' indexes).
// Meanwhile a decision's event is appended to the event store every 100 ms, timed from before its
// insert to its record on the log: what a rebuild costs the relay.
import { randomUUID } from 'node:crypto';
import { CompiledQuery, sql } from 'kysely';
import { copyRows } from '../../infra/copy.ts';
import { EventLog, type NewEvent } from '../../infra/kafka/index.ts';
import { rebuild } from '../../apps/projection-admin.ts';
import { FRAGMENT_COLUMNS } from '../../projections/captions/projection.ts';
import { createCaptionTables } from '../../projections/captions/tables.ts';
import { System } from '../support/system.ts';
import { BenchCaptions, channelNames, histogram, knob, latency, now, sleep, startApp, type Latency } from './common.ts';
import { INSERT_EVENT, issuedRow } from '../support/event-rows.ts';
import { dropSystem } from './ingest.ts';

export interface RebuildResult {
  events: number;
  appendSeconds: number;
  firstBuild: { seconds: number; eventsPerSec: number };
  rebuild: {
    seconds: number;
    eventsPerSec: number;
    rowsVerified: boolean;
    /** From the request to the new version's partitions assigned (the supervisor's poll, the group join). */
    startUpSeconds: number;
    catchUpSeconds: number;
    /** From its partitions assigned to every event applied. */
    catchUpEventsPerSec: number;
    indexAndSwapSeconds: number;
  };
  /** COPY of the same rows into an index-less caption table, in transactions of `batch` rows. */
  copy: { seconds: number; rowsPerSec: number; batch: number };
  /** Catch-up over that COPY: the goal is >= 0.8. */
  catchUpRatioToCopy: number;
  /** Decisions' events appended during the rebuild, from before the insert to the record on the log. */
  decisionEvents: Latency & { unpublished: number };
  /** Rebuild time over first-build time: the cost of building beside a serving version and swapping. */
  ratioToFirstBuild: number;
  targetSeconds: number;
}

/**
 * The rebuilt rows, read back in log order, COPYed again into a fresh schema's caption tables as
 * a rebuild creates them (key and search column, no readers' indexes), `batch` rows per commit.
 */
async function copyBaseline(sys: System, from: string, batch: number) {
  const schema = 'bench_rebuild_copy';
  await sql`DROP SCHEMA IF EXISTS ${sql.id(schema)} CASCADE`.execute(sys.db);
  await sql`CREATE SCHEMA ${sql.id(schema)}`.execute(sys.db);
  try {
    await sys.db.transaction().execute(async (trx) => {
      await sql`SET LOCAL search_path TO ${sql.id(schema)}, public`.execute(trx);
      await createCaptionTables(trx);
    });
    const { rows } = await sql<Record<(typeof FRAGMENT_COLUMNS)[number], string | number | null>>`
      SELECT ${sql.join(FRAGMENT_COLUMNS.map((c) => sql.id(c)))} FROM ${sql.id(from, 'caption_fragments')}
      ORDER BY partition, "offset"`.execute(sys.db);
    const values = rows.map((r) => FRAGMENT_COLUMNS.map((c) => r[c]));
    const t0 = now();
    for (let i = 0; i < values.length; i += batch)
      await sys.db.transaction().execute(async (trx) => {
        await sql`SET LOCAL search_path TO ${sql.id(schema)}, public`.execute(trx);
        await copyRows(trx, 'caption_fragments', FRAGMENT_COLUMNS, values.slice(i, i + batch));
      });
    const seconds = (now() - t0) / 1000;
    return { seconds: Math.round(seconds * 100) / 100, rowsPerSec: Math.round(values.length / seconds), batch };
  } finally {
    await sql`DROP SCHEMA IF EXISTS ${sql.id(schema)} CASCADE`.execute(sys.db);
  }
}

async function applied(sys: System, key: string): Promise<number> {
  const { rows } = await sql<{
    n: string | null;
  }>`SELECT sum(next_offset) AS n FROM projection_positions WHERE projection = ${key}`.execute(sys.db);
  return Number(rows[0]?.n ?? 0);
}

/** Appends a decision's event every `everyMs` and times it to its record on the log, until stopped. */
async function decisionProbe(sys: System, everyMs = 100) {
  const pending = new Map<string, number>();
  const hist = histogram();
  const consumer = await sys.log.consume({
    groupId: EventLog.privateGroup('bench-probe'),
    topics: ['streams'],
    startAt: async () => 0,
    onBatch: async (b) => {
      const t = now();
      for (const r of b.records) {
        const userId = (r.event.data as { userId?: string }).userId ?? '';
        const sent = pending.get(userId);
        if (sent === undefined) continue;
        pending.delete(userId);
        hist.recordValue(Math.max(1, Math.round((t - sent) * 1000)));
      }
    },
  });
  let on = true;
  const appending = (async () => {
    while (on) {
      const userId = randomUUID();
      pending.set(userId, now());
      await sys.db.executeQuery(CompiledQuery.raw(INSERT_EVENT, issuedRow(sys.log.codec, userId, userId)));
      await sleep(everyMs);
    }
  })();
  return async (): Promise<Latency & { unpublished: number }> => {
    on = false;
    await appending;
    const until = Date.now() + 10_000;
    while (pending.size && Date.now() < until) await sleep(50);
    await consumer.stop();
    return { ...latency(hist), unpublished: pending.size };
  };
}

export async function rebuildBench(log: (s: string) => void): Promise<RebuildResult> {
  const n = knob('REBUILD_EVENTS', 1_000_000, 50_000);
  const chunk = 10_000;
  const channels = channelNames(100);
  const sys = await System.create();
  try {
    log(`rebuild: appending ${n.toLocaleString()} caption events`);
    const captions = new BenchCaptions();
    const ta = now();
    for (let i = 0; i < n; i += chunk) {
      const evs: NewEvent<'CaptionFragmentReceived'>[] = [];
      for (let j = i; j < Math.min(n, i + chunk); j++) evs.push(captions.next(channels[j % channels.length]!));
      for (let attempt = 1; ; attempt++) {
        try {
          await sys.log.append(evs);
          break;
        } catch (e) {
          if (attempt >= 5) throw e;
          await sleep(200); // repeats are dropped by the projection
        }
      }
    }
    const appendSeconds = (now() - ta) / 1000;
    const inLog = await sys.captionsInLog();

    log(`rebuild: appended in ${appendSeconds.toFixed(1)}s; first build (v1)`);
    const t1 = now();
    await startApp(sys, 'projector');
    while ((await applied(sys, 'captions_v1')) < inLog) await sleep(50);
    const first = (now() - t1) / 1000;

    log(`rebuild: v1 built in ${first.toFixed(1)}s; rebuilding v2 beside it`);
    await startApp(sys, 'relay');
    const probed = await decisionProbe(sys);
    const t2 = now();
    const version = await rebuild(sys.db, 'captions');
    const deadline = Date.now() + 600_000;
    let caughtUp: number | undefined;
    let assigned: number | undefined; // the new version's positions written: its consumer has its partitions
    for (;;) {
      const { rows } = await sql<{ current: number }>`SELECT current FROM projection_versions WHERE name = 'captions'`.execute(sys.db);
      if (rows[0]?.current === version) break;
      if (assigned === undefined) {
        const { rows: p } = await sql<{ n: number }>`
          SELECT count(*)::int AS n FROM projection_positions WHERE projection = ${`captions_v${version}`}`.execute(sys.db);
        if (p[0]?.n) assigned = now();
      }
      if (caughtUp === undefined && (await applied(sys, `captions_v${version}`)) >= inLog) caughtUp = now();
      if (Date.now() > deadline) throw new Error('the rebuild did not finish in 10 minutes');
      await sleep(50);
    }
    const seconds = (now() - t2) / 1000;
    const decisionEvents = await probed();
    const catchUpSeconds = ((caughtUp ?? now()) - t2) / 1000;
    const { rows } = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM ${sql.id(`captions_v${version}`, 'caption_fragments')}`.execute(sys.db);
    log(`rebuild: swapped after ${seconds.toFixed(1)}s; COPY baseline`);
    const copy = await copyBaseline(sys, `captions_v${version}`, knob('REBUILD_COPY_BATCH', 8000));
    const startUpSeconds = ((assigned ?? t2) - t2) / 1000;
    const catchUpEventsPerSec = Math.round(n / (catchUpSeconds - startUpSeconds));
    return {
      events: n,
      appendSeconds: Math.round(appendSeconds * 10) / 10,
      firstBuild: { seconds: Math.round(first * 100) / 100, eventsPerSec: Math.round(n / first) },
      rebuild: {
        seconds: Math.round(seconds * 100) / 100,
        eventsPerSec: Math.round(n / seconds),
        rowsVerified: rows[0]?.n === n,
        startUpSeconds: Math.round(startUpSeconds * 100) / 100,
        catchUpSeconds: Math.round(catchUpSeconds * 100) / 100,
        catchUpEventsPerSec,
        indexAndSwapSeconds: Math.round((seconds - catchUpSeconds) * 100) / 100,
      },
      copy,
      catchUpRatioToCopy: Math.round((catchUpEventsPerSec / copy.rowsPerSec) * 100) / 100,
      decisionEvents,
      ratioToFirstBuild: Math.round((seconds / first) * 100) / 100,
      targetSeconds: 20,
    };
  } finally {
    await sys.stop();
    await dropSystem(sys);
  }
}
