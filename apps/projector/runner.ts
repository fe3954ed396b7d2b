// Runs projection versions: each writes, per batch, its rows and its positions in one Postgres
// transaction of its own, starting from its positions in Postgres, never from group offsets, so a
// crash at any point neither loses nor doubles a row. The versions a projector serves read each
// topic once between them (a caption is fetched and decoded once for the caption history and for
// analytics); a version being rebuilt reads alone.
import { sql, type Transaction } from 'kysely';
import type { Database, Db } from '../../projections/database.ts';
import type { EventLog, PartitionBatch } from '../../infra/kafka/index.ts';
import type { Logger } from '../../infra/logger.ts';
import { prom, LATENCY_BUCKETS, type Registry } from '../../infra/metrics.ts';
import type { ProjectedRecord, Projection } from '../../projections/projection.ts';
import type { TopicName } from '../../schemas/catalog.ts';
import { projectionGroup, schemaOf } from '../../projections/versions.ts';
import { writesNoEvents } from '../../infra/eventstore/postgres.ts';
import { sameTurn } from './same-turn.ts';

/** One set of metrics per process, labelled by projection. */
function projectionMetrics(metrics: Registry) {
  const get = <T>(name: string, make: () => T): T => (metrics.getSingleMetric(name) as T | undefined) ?? make();
  return {
    applied: get(
      'castlog_projection_events_total',
      () =>
        new prom.Counter({
          name: 'castlog_projection_events_total',
          help: 'Events applied',
          labelNames: ['projection'],
          registers: [metrics],
        }),
    ),
    lag: get(
      'castlog_projection_lag',
      () =>
        new prom.Gauge({
          name: 'castlog_projection_lag',
          help: 'Records in the log not yet applied',
          labelNames: ['projection', 'topic', 'partition'],
          registers: [metrics],
        }),
    ),
    pastLogEnd: get(
      'castlog_projection_position_past_log_end',
      () =>
        new prom.Gauge({
          name: 'castlog_projection_position_past_log_end',
          help: 'Records a stored position lies past the end of its partition (1+: the log was replaced or cut; rebuild the projection)',
          labelNames: ['projection', 'topic', 'partition'],
          registers: [metrics],
        }),
    ),
    latency: get(
      'castlog_projection_latency_seconds',
      () =>
        new prom.Histogram({
          name: 'castlog_projection_latency_seconds',
          help: 'From ingest acknowledgement to the row committed',
          labelNames: ['projection'],
          buckets: LATENCY_BUCKETS,
          registers: [metrics],
        }),
    ),
  };
}

export interface RunningProjection {
  stop(): Promise<void>;
}

export interface RunOptions {
  /** Runs after each committed batch (the supervisor swaps in a rebuilt version once it has caught up). */
  afterBatch?: (lag: number) => Promise<void>;
  /** A partition with no stored position starts at the log's end, not its beginning. */
  startAtEnd?: boolean;
  /**
   * Wait for each commit to reach the WAL. A projection can skip that (a commit lost with Postgres
   * is lost with its positions, and applied again); a processor whose rows cause effects outside
   * (e-mails) must not, or an effect could be caused twice.
   */
  durable?: boolean;
}

/** One projection version as a member of a reader: where it starts in each partition, and how it
 *  applies a batch (its rows and its position in one transaction of its own). */
interface Member {
  key: string;
  projection: Projection;
  startAt(topic: TopicName, partition: number): Promise<number>;
  /** Applies a batch: how far behind the partition's end it then is, or where to read from instead. */
  apply(batch: PartitionBatch): Promise<{ behind: number } | { seek: number }>;
}

type Deps = { log: EventLog; db: Db; logger: Logger; metrics: Registry };

/**
 * Version `version` of a projection: its tables are in schema <name>_v<version>, its positions are
 * kept under that name.
 */
function member(deps: Deps, projection: Projection, version: number, opts: RunOptions, join: boolean): Member {
  const afterBatch = opts.afterBatch ?? (async () => undefined);
  const { log, db, metrics } = deps;
  const key = schemaOf(projection.name, version);
  const logger = deps.logger.child({ projection: key });
  const { applied, lag, latency, pastLogEnd } = projectionMetrics(metrics);
  const startAt = async (topic: TopicName, partition: number): Promise<number> => {
    const ends = (await log.offsets(topic)).find((o) => o.partition === partition);
    const first = (opts.startAtEnd ? ends?.high : ends?.low) ?? 0;
    await db
      .insertInto('projection_positions')
      .values({ projection: key, topic, partition, next_offset: first })
      .onConflict((oc) => oc.doNothing())
      .execute();
    const row = await db
      .selectFrom('projection_positions')
      .select('next_offset')
      .where('projection', '=', key)
      .where('topic', '=', topic)
      .where('partition', '=', partition)
      .executeTakeFirstOrThrow();
    logger.info({ topic, partition, offset: row.next_offset }, 'projection starts at stored position');
    // A position past the log's end means this read model was built from another log (the topic
    // was deleted and made again, a cluster restored from an older copy): the records the new log
    // gets below that position would be taken for applied ones. Said loudly; a rebuild fixes it.
    // The log only grows, so a position within the end read above is within it now; one past it
    // is checked against the end read again (another projector may have moved it meanwhile).
    // That end not known (Kafka away for a moment): not checked, rather than not started.
    const end =
      ends && row.next_offset <= ends.high
        ? ends.high
        : (await log.offsets(topic).catch(() => [])).find((o) => o.partition === partition)?.high;
    const past = end === undefined ? 0 : row.next_offset - end;
    pastLogEnd.set({ projection: key, topic, partition }, Math.max(0, past));
    if (past > 0)
      logger.error(
        { topic, partition, position: row.next_offset, logEnd: end },
        `the stored position lies past the end of the log: this read model was built from another log; rebuild ${projection.name}`,
      );
    return row.next_offset;
  };
  /** Locks a batch's position and moves it past the batch when it lies within it: one statement, the usual case. */
  const position = async (trx: Transaction<Database>, batch: PartitionBatch): Promise<{ next: number; moved: boolean }> => {
    // The version's own tables come first; shared ones (positions) are in public. Rows and
    // positions commit together, so a commit lost to a Postgres crash loses both and is
    // applied again: no need to wait for the WAL flush. set_config(…, true) is SET LOCAL.
    const settings = sql`set_config('search_path', ${`"${key.replaceAll('"', '""')}", public`}, true) AS search_path,
                         set_config('synchronous_commit', ${opts.durable ? 'on' : 'off'}, true) AS synchronous_commit`;
    // This partition's position row (unqualified: o below has none of these columns).
    const here = sql`projection = ${key} AND topic = ${batch.topic} AND partition = ${batch.partition}`;
    const lastOffset = batch.records.at(-1)?.offset;
    // A batch of a few records is mostly round trips, so the usual case is one statement: the
    // settings, and the position locked and moved past the batch when it lies within it
    // (the rows are written in the same transaction, so a failure moves nothing).
    const moved =
      lastOffset === undefined
        ? undefined
        : (
            await sql<{ before: number }>`
              UPDATE projection_positions p SET next_offset = ${lastOffset + 1}, updated_at = now()
              FROM (SELECT next_offset, ${settings} FROM projection_positions WHERE ${here} FOR UPDATE) AS o
              WHERE ${here} AND o.next_offset BETWEEN ${batch.firstOffset} AND ${lastOffset}
              RETURNING o.next_offset AS before`.execute(trx)
          ).rows[0]?.before;
    if (moved !== undefined) return { next: moved, moved: true };
    const { rows } = await sql<{ next_offset: number | null }>`
      SELECT ${settings}, p.next_offset FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (SELECT next_offset FROM projection_positions WHERE ${here} FOR UPDATE) AS p ON true`.execute(trx);
    return { next: Number(rows[0]?.next_offset ?? 0), moved: false };
  };
  type Outcome = { next: number; applied?: ProjectedRecord[] } | { seek: number };
  /**
   * Applies batches of different partitions in one transaction: their rows and positions commit
   * together. Positions are locked in (topic, partition) order, so two projectors taking over each
   * other's partitions cannot deadlock on them.
   */
  const applyAll = (batches: PartitionBatch[]): Promise<Outcome[]> =>
    db.transaction().execute(async (trx) => {
      // A projection appends no events: saying so lets the relay publish decisions' events while
      // this batch runs (a catch-up's batch can take a second or more), where it waited for it.
      await writesNoEvents(trx);
      const order = [...batches.keys()].sort((a, b) => {
        const [x, y] = [batches[a]!, batches[b]!];
        return x.topic === y.topic ? x.partition - y.partition : x.topic < y.topic ? -1 : 1;
      });
      const taken: { next: number; moved: boolean }[] = [];
      for (const i of order) taken[i] = await position(trx, batches[i]!);
      const outcomes = batches.map((batch, i): Outcome => {
        const { next } = taken[i]!;
        const fresh = batch.records.filter((r) => r.offset >= next);
        if (!fresh.length) return { next };
        // Records before our position were already applied; a hole after it means the consumer
        // started somewhere else (a lost seek): go back rather than skip.
        if (batch.firstOffset > next) return { seek: next };
        return { next: fresh.at(-1)!.offset + 1, applied: fresh };
      });
      const fresh = outcomes.flatMap((o) => ('applied' in o && o.applied) || []);
      if (fresh.length) await projection.apply(trx, fresh);
      for (const i of order) {
        const o = outcomes[i]!;
        if (!('applied' in o) || !o.applied || taken[i]!.moved) continue;
        const batch = batches[i]!;
        await sql`INSERT INTO projection_positions (projection, topic, partition, next_offset, updated_at)
                  VALUES (${key}, ${batch.topic}, ${batch.partition}, ${o.next}, now())
                  ON CONFLICT (projection, topic, partition)
                  DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()`.execute(trx);
      }
      return outcomes;
    });
  const applyOne = async (batch: PartitionBatch) => (await applyAll([batch]))[0]!;
  /**
   * A reader that waits to fill its batches (a read model nobody needs within the second) hands each
   * partition's batch of a fetch at once: they go in one transaction, where each was one of its own.
   * If it fails, each is tried again alone, so a record that fails holds back its own partition only.
   */
  const applyTogether = (batches: PartitionBatch[]): Promise<Outcome>[] => {
    if (batches.length === 1) return [applyOne(batches[0]!)];
    // Said once, with the partitions it held: a failure only the joined attempt meets (a deadlock,
    // one partition's records failing with another's) would otherwise pass unseen.
    const together = applyAll(batches).catch((err: unknown) => {
      const partitions = batches.map((b) => `${b.topic}/${b.partition}`);
      logger.warn({ err, projection: key, partitions }, 'joined batches failed; trying each partition alone');
      throw err;
    });
    return batches.map((batch, i) =>
      together.then(
        (outcomes) => outcomes[i]!,
        () => applyOne(batch),
      ),
    );
  };
  const applyBatch = join ? sameTurn(applyTogether) : applyOne;
  const apply = async (batch: PartitionBatch): Promise<{ behind: number } | { seek: number }> => {
    const outcome = await applyBatch(batch);
    if ('seek' in outcome) {
      logger.warn({ topic: batch.topic, partition: batch.partition, seek: outcome.seek }, 'gap before stored position, seeking back');
      return { seek: outcome.seek };
    }
    const behind = Math.max(0, batch.highWatermark - outcome.next);
    lag.set({ projection: key, topic: batch.topic, partition: batch.partition }, behind);
    if (outcome.applied) {
      applied.inc({ projection: projection.name }, outcome.applied.length);
      await afterBatch(behind);
      const now = Date.now();
      const last = outcome.applied.at(-1)!;
      const receivedAt = last.event.type === 'CaptionFragmentReceived' ? last.event.data.receivedAt : Date.parse(last.meta.time);
      latency.observe({ projection: projection.name }, Math.max(0, now - receivedAt) / 1000);
    }
    return { behind };
  };
  return { key, projection, startAt, apply };
}

/** Versions of projections that read some topics together, on one consumer (see runReader). */
export interface ReaderPlan {
  /** Its consumer group, named by its versions and topics (projectionGroup). */
  group: string;
  versions: { projection: Projection; version: number }[];
  topics: TopicName[];
  /** How long a fetch may wait to fill a batch when records are few (0: not at all). */
  lingerMs: number;
}

/** Attempts in a row a member may fail while the others of its reader apply the same batch before
 *  it goes on a reader of its own: a broken projection must not hold up the others of its process. */
const ALONE_AFTER = 3;
/** A member on a reader of its own goes back to the shared one once it has failed nothing for this
 *  long and its last batches left it at the end of their partitions. */
const REJOIN_AFTER_MS = 5000;

/**
 * Reads topics once for several projection versions (each of which reads every one of them). Each
 * applies every batch at its own position, in its own transaction; the reader starts each partition
 * at the lowest of their positions, and one that finds a hole sends it back there (the others skip
 * what they applied). A batch is done when each has applied it, so a failure is retried for all;
 * but a member that keeps failing while the others apply (a bug in it, its tables' disk full) goes
 * on a reader of its own, from its own positions, and comes back once it has caught up there. When
 * every member fails (Postgres away), nobody is split off.
 * `caughtUp`, for a reader of one member split off: called once that member has caught up.
 */
async function runReader(
  deps: Deps,
  members: Member[],
  plan: Omit<ReaderPlan, 'versions'>,
  caughtUp?: () => void,
): Promise<RunningProjection> {
  const keys = members.map((m) => m.key);
  const current = [...members];
  const failures = new Map<Member, number>();
  const alone = new Set<Promise<RunningProjection | undefined>>();
  let stopped = false;
  const goAlone = (m: Member, err: unknown) => {
    current.splice(current.indexOf(m), 1);
    const group = projectionGroup([m.key], plan.topics);
    deps.logger.error(
      { projection: m.key, group, err },
      `${m.key} failed ${ALONE_AFTER} times in a row where the others applied the batch: ` +
        'it goes on a reader of its own so that they do not wait for it',
    );
    const back = (reason: string) => {
      alone.delete(started);
      if (stopped) return;
      failures.delete(m);
      current.push(m);
      deps.logger.info({ projection: m.key }, reason);
    };
    // Stopped from outside its own batch handling (stop() waits for the batches in hand).
    const rejoin = () =>
      void started
        .then((own) => own?.stop())
        .then(
          () => back(`${m.key} has caught up on its own reader: it is back on the shared one`),
          (e: unknown) => deps.logger.error({ projection: m.key, err: e }, 'could not stop its own reader'),
        );
    const started: Promise<RunningProjection | undefined> = runReader(deps, [m], { ...plan, group }, rejoin).catch((e: unknown) => {
      deps.logger.error({ projection: m.key, err: e }, 'could not start its own reader');
      back(`${m.key} stays on the shared reader`);
      return undefined;
    });
    alone.add(started);
  };
  // For a member split off: when it last failed, and how far behind each partition it was left.
  let lastFailure = Date.now();
  const behindBy = new Map<string, number>();
  let rejoining = false;
  const reader = await deps.log.consume({
    groupId: plan.group,
    topics: plan.topics,
    commit: true,
    // Partitions are independent: applying several at once keeps Node and Postgres both busy. A
    // reader that waits to fill its batches hands every partition's batch of a fetch at once, and
    // its members apply them in one transaction each (see member's `join`).
    partitionsConcurrently: joinsPartitions(plan.lingerMs) ? 64 : 3,
    // The next fetch runs while batches are written; positions are checked per batch, so batches
    // fetched ahead of a seek or a rebalance are filtered or trigger a seek back, never applied twice.
    pipeline: 2,
    ...(plan.lingerMs > 0 ? { linger: { minBytes: 256 * 1024, maxWaitMs: plan.lingerMs } } : {}),
    startAt: async (topic, partition) => Math.min(...(await Promise.all(current.map((m) => m.startAt(topic, partition))))),
    onPoison: (topic, partition, offset, error) =>
      deps.logger.error({ projections: keys, topic, partition, offset, err: error }, 'undecodable record skipped'),
    onBatch: async (batch) => {
      const applying = [...current];
      const outcomes = await Promise.allSettled(applying.map((m) => m.apply(batch)));
      const someApplied = outcomes.some((o) => o.status === 'fulfilled');
      let failure: { reason: unknown } | undefined;
      outcomes.forEach((o, i) => {
        const m = applying[i]!;
        if (o.status === 'fulfilled') return void failures.delete(m);
        const times = (failures.get(m) ?? 0) + 1;
        failures.set(m, times);
        if (!stopped && someApplied && times >= ALONE_AFTER && current.length > 1 && current.includes(m)) goAlone(m, o.reason);
        else failure ??= { reason: o.reason };
      });
      // Retried whole: a member that applied it finds its position past the batch and skips it.
      if (failure) {
        lastFailure = Date.now();
        throw failure.reason;
      }
      const seeks = outcomes.flatMap((o) => (o.status === 'fulfilled' && 'seek' in o.value ? [o.value.seek] : []));
      if (seeks.length) return { seek: Math.min(...seeks) };
      if (caughtUp && !rejoining) {
        for (const o of outcomes)
          if (o.status === 'fulfilled' && 'behind' in o.value) behindBy.set(`${batch.topic}/${batch.partition}`, o.value.behind);
        if (Date.now() - lastFailure >= REJOIN_AFTER_MS && [...behindBy.values()].every((b) => b === 0)) {
          rejoining = true;
          caughtUp();
        }
      }
      return undefined;
    },
  });
  return {
    stop: async () => {
      stopped = true;
      await reader.stop();
      for (const own of await Promise.all([...alone])) await own?.stop();
    },
  };
}

const lingerOf = (projection: Projection, topic: TopicName) => projection.lingerMs?.[topic] ?? 0;
/** Whether a reader's members apply a fetch's partitions in one transaction: those of a reader that waits to fill its batches. */
const joinsPartitions = (lingerMs: number) => lingerMs > 0;

/** Runs version `version` of a projection on a consumer of its own (a version being rebuilt, the matcher). */
export function runProjection(deps: Deps, projection: Projection, version: number, opts: RunOptions = {}): Promise<RunningProjection> {
  const lingerMs = Math.min(...projection.topics.map((t) => lingerOf(projection, t)));
  return runReader(deps, [member(deps, projection, version, opts, joinsPartitions(lingerMs))], {
    group: projectionGroup([schemaOf(projection.name, version)]),
    topics: projection.topics,
    lingerMs,
  });
}

/**
 * How versions of several projections read the log: each topic once for all of them that read it
 * alike (a caption fetched and decoded once for the caption history and for analytics), and topics
 * read alike by the same versions on one consumer.
 */
export function planReaders(versions: { projection: Projection; version: number }[]): ReaderPlan[] {
  const alike = new Map<string, { keys: string[]; versions: ReaderPlan['versions']; topics: TopicName[]; lingerMs: number }>();
  for (const topic of new Set(versions.flatMap((v) => v.projection.topics))) {
    const reading = versions.filter((v) => v.projection.topics.includes(topic));
    // Those that wait for fuller batches read apart from those that do not, one reader per wait.
    for (const lingerMs of new Set(reading.map((v) => lingerOf(v.projection, topic)))) {
      const readers = reading.filter((v) => lingerOf(v.projection, topic) === lingerMs);
      const keys = readers.map((v) => schemaOf(v.projection.name, v.version)).sort();
      const id = `${keys} ${lingerMs}`;
      const reader = alike.get(id) ?? { keys, versions: readers, topics: [], lingerMs };
      reader.topics.push(topic);
      alike.set(id, reader);
    }
  }
  return [...alike.values()].map(({ keys, versions, topics, lingerMs }) => ({
    group: projectionGroup(keys, topics),
    versions,
    topics,
    lingerMs,
  }));
}

/** Runs one reader of planReaders. */
export function runPlannedReader(deps: Deps, plan: ReaderPlan): Promise<RunningProjection> {
  return runReader(
    deps,
    plan.versions.map(({ projection, version }) => member(deps, projection, version, {}, joinsPartitions(plan.lingerMs))),
    plan,
  );
}
