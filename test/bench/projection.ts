// Scenario 4: projection events/s. N CaptionFragmentReceived events go straight to Kafka through
// EventLog.append; then the real projector (apps/projector/main.ts, a child process) is timed from
// its start to having applied all of them, polling projection_positions.
// Baselines in the same run: the same consume path without Postgres (EventLog.consume, decoding
// every record), and a plain INSERT ... unnest and a plain COPY of the same rows into a scratch
// table with the serving table's columns and indexes, in batches of the size the consumer was handed.
import { sql } from 'kysely';
import { copyRows } from '../../infra/copy.ts';
import { EventLog, type NewEvent } from '../../infra/kafka/index.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { FRAGMENT_COLUMNS } from '../../projections/captions/projection.ts';
import { PROJECTIONS } from '../../projections/catalog.ts';
import { schemaOf } from '../../projections/versions.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';
import { System } from '../support/system.ts';
import { BenchCaptions, CpuMeter, channelNames, kafkaPid, knob, now, sleep, startApp, trackSystem } from './common.ts';
import { dropSystem } from './ingest.ts';

export interface ProjectionResult {
  events: number;
  /** Records in the log: events, plus repeats when an append had to be sent again. */
  records: number;
  append: { seconds: number; eventsPerSec: number; chunk: number; failures: number };
  projector: {
    which: string;
    /** From spawning the process to every event applied. */
    totalSeconds: number;
    totalEventsPerSec: number;
    /** From its partitions being assigned (positions rows written) to every event applied. */
    applySeconds: number;
    eventsPerSec: number;
    startupSeconds: number;
    rowsVerified: boolean;
    others: Record<string, number | string>;
    cpu: Record<string, number>;
  };
  /** The same, with the captions projection in a projector of its own and the others in a second. */
  projectorAlone: ProjectionResult['projector'];
  consumeOnly: { seconds: number; eventsPerSec: number; batches: number; meanBatch: number };
  insertUnnest: { seconds: number; eventsPerSec: number; batch: number };
  copy: { seconds: number; eventsPerSec: number; batch: number };
  ratioToInsert: number;
  /** The projector against a bare COPY of the same rows into the same table: the goal is >= 0.8. */
  ratioToCopy: number;
  ratioToConsume: number;
  ratioAloneToCopy: number;
}

function events(n: number, channels: string[]): NewEvent<'CaptionFragmentReceived'>[] {
  const captions = new BenchCaptions();
  return Array.from({ length: n }, (_, i) => captions.next(channels[i % channels.length]!));
}

/** The consume path without Postgres: every record decoded, nothing written. */
async function consumeOnly(log: EventLog, n: number) {
  let count = 0;
  let batches = 0;
  let first = 0;
  let last = 0;
  const consumer = await log.consume({
    groupId: EventLog.privateGroup('castlog-bench-consume'),
    topics: ['captions'],
    startAt: async () => 0,
    onBatch: async (b) => {
      if (!first) first = now();
      count += b.records.length;
      if (b.records.length) batches++;
      last = now();
    },
  });
  const deadline = Date.now() + 120_000;
  while (count < n && Date.now() < deadline) await sleep(10);
  await consumer.stop();
  if (count < n) throw new Error(`consume baseline saw ${count} of ${n} events`);
  const seconds = (last - first) / 1000;
  return { seconds: Math.round(seconds * 1000) / 1000, eventsPerSec: Math.round(n / seconds), batches, meanBatch: Math.round(n / batches) };
}

/** Plain INSERT ... unnest (or COPY) of the same rows, one transaction per batch, into a same-shaped table. */
async function scratchBaseline(sys: System, evs: NewEvent<'CaptionFragmentReceived'>[], batch: number, how: 'unnest' | 'copy') {
  const schema = await servingSchema(sys);
  await sql`DROP TABLE IF EXISTS bench_scratch`.execute(sys.db);
  await sql`CREATE TABLE bench_scratch (LIKE ${sql.id(schema, 'caption_fragments')} INCLUDING ALL)`.execute(sys.db);
  const offsets = new Map<number, number>();
  const rows = evs.map((e) => {
    const partition = partitionFor(e.key, TOPICS.captions.partitions);
    const offset = offsets.get(partition) ?? 0;
    offsets.set(partition, offset + 1);
    return { partition, offset, d: e.data as CaptionFragmentReceived };
  });
  const t0 = now();
  for (let i = 0; i < rows.length; i += batch) {
    const part = rows.slice(i, i + batch);
    const d = part.map((r) => r.d);
    await sys.db.transaction().execute(async (trx) => {
      if (how === 'copy') {
        const values = part.map(({ partition, offset, d: x }) => [
          x.channel,
          partition,
          offset,
          x.station,
          x.seq,
          x.text,
          x.start,
          x.end,
          x.mode,
          x.lang,
          x.receivedAt,
        ]);
        await copyRows(trx, 'bench_scratch', FRAGMENT_COLUMNS, values);
        return;
      }
      await sql`INSERT INTO bench_scratch
          (channel, partition, "offset", station, seq, text, start_ms, end_ms, mode, lang, received_at_ms)
        SELECT * FROM unnest(
          ${d.map((x) => x.channel)}::text[], ${part.map((r) => r.partition)}::int[],
          ${part.map((r) => r.offset)}::bigint[], ${d.map((x) => x.station)}::text[],
          ${d.map((x) => x.seq)}::bigint[], ${d.map((x) => x.text)}::text[],
          ${d.map((x) => x.start)}::bigint[], ${d.map((x) => x.end)}::bigint[],
          ${d.map((x) => x.mode)}::text[], ${d.map((x) => x.lang)}::text[],
          ${d.map((x) => x.receivedAt)}::bigint[])`.execute(trx);
    });
  }
  const seconds = (now() - t0) / 1000;
  const { rows: counted } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM bench_scratch`.execute(sys.db);
  if (counted[0]?.n !== rows.length) throw new Error(`scratch table holds ${counted[0]?.n} of ${rows.length} rows`);
  await sql`DROP TABLE bench_scratch`.execute(sys.db);
  return { seconds: Math.round(seconds * 1000) / 1000, eventsPerSec: Math.round(rows.length / seconds), batch };
}

/** The schema of the serving version of the captions read model (captions_v<N>). */
async function servingSchema(sys: System): Promise<string> {
  const { rows } = await sql<{ current: number }>`SELECT current FROM projection_versions WHERE name = 'captions'`.execute(sys.db);
  return schemaOf('captions', rows[0]?.current ?? 1);
}

/** Empties every serving read model and its positions, so the projectors build them again from the log. */
async function resetReadModels(sys: System): Promise<void> {
  const { rows } = await sql<{ schema: string; table: string }>`
    SELECT schemaname AS schema, tablename AS table FROM pg_tables
    WHERE schemaname IN (SELECT name || '_v' || current FROM projection_versions)`.execute(sys.db);
  await sql`TRUNCATE ${sql.join(rows.map((r) => sql.id(r.schema, r.table)))}`.execute(sys.db);
  await sql`DELETE FROM projection_positions`.execute(sys.db);
}

/** Every projection but the captions one: what the second projector runs when they are split. */
const OTHERS = Object.keys(PROJECTIONS).filter((name) => name !== 'captions');

/**
 * Runs the real projector until every reader of the captions topic has applied `n` events: one
 * process running every projection (npm start's shape), or, given `rest`, the captions projection
 * in a process of its own (PROJECTIONS=captions) and the others in a second.
 */
async function runProjector(sys: System, n: number, unique: number, rest?: System) {
  const name = await servingSchema(sys); // positions are kept under the version's name
  /** Every projection that reads `captions` (the captions read model, and others such as analytics). */
  const positions = async () => {
    const { rows } = await sql<{ projection: string; parts: number; applied: number | null }>`
      SELECT projection, count(*)::int AS parts, sum(next_offset)::bigint AS applied FROM projection_positions
      WHERE topic = 'captions' GROUP BY projection`.execute(sys.db);
    return new Map(rows.map((r) => [r.projection, { parts: r.parts, applied: Number(r.applied ?? 0) }]));
  };
  const t0 = now();
  // The real apps/projector/main.ts; startApp resolves once its /healthz answers, so poll alongside.
  const started = Promise.all([
    startApp(sys, 'projector', rest ? { PROJECTIONS: 'captions' } : {}),
    ...(rest ? [startApp(rest, 'projector', { PROJECTIONS: OTHERS.join(',') })] : []),
  ]);
  started.catch(() => undefined);
  const meter = new CpuMeter(() => ({
    projector: sys.procs.get('projector')?.pid,
    ...(rest ? { 'second projector': rest.procs.get('projector')?.pid } : {}),
    kafka: kafkaPid(),
  }));
  let tAssigned = 0;
  let tDone = 0;
  const doneAt = new Map<string, number>();
  let seen = new Map<string, { parts: number; applied: number }>();
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    seen = await positions();
    const mine = seen.get(name);
    if (!tAssigned && mine && mine.parts > 0) {
      tAssigned = now();
      meter.begin();
    }
    for (const [p, a] of seen) if (!doneAt.has(p) && a.applied >= n && a.parts === TOPICS.captions.partitions) doneAt.set(p, now());
    if (doneAt.has(name) && !tDone) {
      tDone = doneAt.get(name)!;
    }
    // Done when the captions read model is, and every other reader of the topic too (or 30 s later).
    if (tDone && ([...seen.keys()].every((p) => doneAt.has(p)) || now() - tDone > 30_000)) break;
    for (const at of rest ? [sys, rest] : [sys]) {
      if (at.procs.has('projector') && !at.running('projector')) throw new Error(`a projector exited: ${at.said('projector')}`);
    }
    await sleep(20);
  }
  await started;
  if (!tDone) throw new Error(`the projector applied ${seen.get(name)?.applied ?? 0} of ${n} events in time`);
  const cpu = meter.end();
  const { rows } = await sql<{ rows: number; counted: number }>`
    SELECT (SELECT count(*)::int FROM ${sql.id(name, 'caption_fragments')}) AS rows,
           (SELECT sum(fragment_count)::int FROM ${sql.id(name, 'channels')}) AS counted`.execute(sys.db);
  const rowsVerified = rows[0]?.rows === unique && rows[0]?.counted === unique;
  const others = Object.fromEntries(
    [...seen.keys()]
      .filter((p) => p !== name)
      .map((p) => {
        const d = doneAt.get(p);
        return [p, d ? Math.round(n / ((d - tAssigned) / 1000)) : `not done: ${seen.get(p)?.applied} of ${n} applied`];
      }),
  );
  return {
    which: rest
      ? `apps/projector/main.ts PROJECTIONS=captions (${name}), the others in a second projector`
      : `apps/projector/main.ts (${name})`,
    totalSeconds: Math.round(tDone - t0) / 1000,
    totalEventsPerSec: Math.round(n / ((tDone - t0) / 1000)),
    applySeconds: Math.round(tDone - tAssigned) / 1000,
    eventsPerSec: Math.round(n / ((tDone - tAssigned) / 1000)),
    startupSeconds: Math.round(tAssigned - t0) / 1000,
    rowsVerified,
    /** Other projections reading the captions topic: their events/s (same clock). */
    others,
    cpu,
  };
}

export async function projectionBench(log: (s: string) => void): Promise<ProjectionResult> {
  const n = knob('PROJECTION_EVENTS', 200_000, 30_000);
  const chunk = knob('PROJECTION_APPEND_CHUNK', 10_000);
  const channels = channelNames(100);
  const sys = trackSystem(await System.create());
  try {
    const evs = events(n, channels);
    log(`projection: appending ${n.toLocaleString()} events through EventLog.append (${chunk} per call)`);
    const ta = now();
    let appendFailures = 0;
    for (let i = 0; i < evs.length; i += chunk) {
      // An append refused after EventLog's timeout may still have been stored in part: the chunk
      // is sent again, and the projection drops the repeats by (channel, station, seq).
      for (let attempt = 1; ; attempt++) {
        try {
          await sys.log.append(evs.slice(i, i + chunk));
          break;
        } catch (e) {
          appendFailures++;
          if (attempt >= 5) throw e;
          await sleep(200);
        }
      }
    }
    const appendSeconds = (now() - ta) / 1000;
    const inLog = await sys.captionsInLog();
    if (inLog < n) throw new Error(`the log holds ${inLog} of ${n} events`);
    if (appendFailures)
      log(`projection: ${appendFailures} append calls failed and were repeated; the log holds ${inLog} records for ${n} events`);
    log(`projection: appended in ${appendSeconds.toFixed(1)}s; consume-only baseline`);
    const consume = await consumeOnly(sys.log, inLog);
    log(
      `projection: consume-only ${consume.eventsPerSec.toLocaleString()} events/s (mean batch ${consume.meanBatch}); ` +
        'INSERT unnest baseline',
    );
    const insert = await scratchBaseline(sys, evs, consume.meanBatch, 'unnest');
    log(`projection: INSERT unnest ${insert.eventsPerSec.toLocaleString()} rows/s; COPY baseline`);
    const copy = await scratchBaseline(sys, evs, consume.meanBatch, 'copy');
    log(`projection: COPY ${copy.eventsPerSec.toLocaleString()} rows/s; projector`);
    const projector = await runProjector(sys, inLog, n);
    log(`projection: projector ${projector.eventsPerSec.toLocaleString()} events/s after ${projector.startupSeconds}s start-up`);
    await sys.kill('projector', 'SIGTERM');
    await resetReadModels(sys);
    const rest = trackSystem(await System.sharing(sys));
    let projectorAlone: ProjectionResult['projector'];
    try {
      projectorAlone = await runProjector(sys, inLog, n, rest);
    } finally {
      await rest.stop();
    }
    log(`projection: captions alone ${projectorAlone.eventsPerSec.toLocaleString()} events/s, the others in a second projector`);
    return {
      events: n,
      records: inLog,
      append: {
        seconds: Math.round(appendSeconds * 1000) / 1000,
        eventsPerSec: Math.round(n / appendSeconds),
        chunk,
        failures: appendFailures,
      },
      projector,
      projectorAlone,
      consumeOnly: consume,
      insertUnnest: insert,
      copy,
      ratioToInsert: Math.round((projector.eventsPerSec / insert.eventsPerSec) * 100) / 100,
      ratioToCopy: Math.round((projector.eventsPerSec / copy.eventsPerSec) * 100) / 100,
      ratioToConsume: Math.round((projector.eventsPerSec / consume.eventsPerSec) * 100) / 100,
      ratioAloneToCopy: Math.round((projectorAlone.eventsPerSec / copy.eventsPerSec) * 100) / 100,
    };
  } finally {
    await sys.stop();
    await dropSystem(sys);
  }
}
