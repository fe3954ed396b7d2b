// What admins do with projections, for the CLI and the admin HTTP API alike:
// status, rebuild (the projector builds the next version and swaps it in), verify.
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { LastSeqs } from '../domain/captions/repeats.ts';
import type { Db } from '../projections/database.ts';
import { EventLog, type GroupMember } from '../infra/kafka/index.ts';
import { PROJECTIONS } from '../projections/catalog.ts';
import { PROJECTION_GROUPS, positionsOf, schemaOf, startRebuild, versions, versionsOfGroup } from '../projections/versions.ts';
import type { CaptionFragmentReceived } from '../schemas/types.generated.ts';
import { fragmentOf, fragmentsInLogOrder } from '../projections/captions/queries.ts';

export interface VersionStatus {
  version: number;
  role: 'serving' | 'building';
  rows: Record<string, number>;
  positions: { topic: string; partition: number; next: number; end: number; lag: number }[];
  lag: number;
  /** Records by which its positions lie past the end of the log (0 normally): it was built from
   *  another log (a topic made again, a cluster restored from an older copy), and records the log
   *  gets below those positions would be taken for applied ones. A rebuild fixes it. */
  pastLogEnd: number;
  /** Share of the log applied, 0..1 (for a version being built, its progress). */
  progress: number;
  /** The projector processes running this version: its Kafka consumer group's members. None means
   *  no projector was given this projection (PROJECTIONS) or none is up; a process killed stays
   *  listed until its group session ends (10 s). */
  runners: GroupMember[];
}

export interface ProjectionStatus {
  name: string;
  current: number;
  building: number | null;
  versions: VersionStatus[];
}

/** Exact for small tables; Postgres's estimate past 100k rows, so status can be polled every second. */
async function rowCount(db: Db, schema: string, table: string): Promise<number> {
  const { rows: est } = await sql<{ n: number }>`
    SELECT greatest(reltuples, 0)::bigint AS n FROM pg_class WHERE oid = ${`"${schema}"."${table}"`}::regclass`.execute(db);
  if ((est[0]?.n ?? 0) > 100_000) return Number(est[0]!.n);
  const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM ${sql.id(schema, table)}`.execute(db);
  return rows[0]!.n;
}

/** A version's place in the log: everything of its status but row counts and runners. */
type VersionPositions = Omit<VersionStatus, 'rows' | 'runners'>;

/** Every projection version's positions against the log's ends, each topic's ends read once
 *  however many projections read it. */
async function projectionPositions(
  db: Db,
  log: EventLog,
): Promise<(Omit<ProjectionStatus, 'versions'> & { versions: VersionPositions[] })[]> {
  const rows = (await versions(db)).filter((row) => PROJECTIONS[row.name]);
  const topics = [...new Set(rows.flatMap((row) => PROJECTIONS[row.name]!.topics))];
  const endsOf = new Map(await Promise.all(topics.map(async (topic) => [topic, await log.offsets(topic)] as const)));
  const out = [];
  for (const row of rows) {
    const ends = new Map<string, { low: number; high: number }>();
    for (const topic of PROJECTIONS[row.name]!.topics) for (const o of endsOf.get(topic)!) ends.set(`${topic}/${o.partition}`, o);
    const total = [...ends.values()].reduce((n, e) => n + e.high - e.low, 0);
    const vs: VersionPositions[] = [];
    for (const [version, role] of [
      [row.current, 'serving'],
      [row.building, 'building'],
    ] as const) {
      if (version === null) continue;
      const stored = await positionsOf(db, row.name, version);
      const positions = [...ends].map(([tp, e]) => {
        const [topic, p] = tp.split('/');
        const next = stored.find((s) => s.topic === topic && s.partition === Number(p))?.next_offset ?? e.low;
        return { topic: topic!, partition: Number(p), next, end: e.high, lag: Math.max(0, e.high - next) };
      });
      const done = positions.reduce((n, p) => n + Math.max(0, p.next - (ends.get(`${p.topic}/${p.partition}`)?.low ?? 0)), 0);
      vs.push({
        version,
        role,
        positions,
        lag: positions.reduce((n, p) => n + p.lag, 0),
        pastLogEnd: positions.reduce((n, p) => n + Math.max(0, p.next - p.end), 0),
        progress: total === 0 ? 1 : Math.min(1, done / total),
      });
    }
    out.push({ name: row.name, current: row.current, building: row.building, versions: vs });
  }
  return out;
}

export async function projectionStatus(db: Db, log: EventLog): Promise<ProjectionStatus[]> {
  const projections = await projectionPositions(db, log);
  // A projector reads each topic once for the versions it serves (apps/projector/runner.ts): its
  // groups are named by them ("analytics_v1+captions_v1@captions"; a version being rebuilt reads
  // alone, "captions_v2"). A process is in one group per reader, so a version's runners are those
  // of its group with the most.
  const groups = [...(await log.groupMembers(PROJECTION_GROUPS)).entries()].map(([name, members]) => ({
    keys: versionsOfGroup(name),
    members,
  }));
  const runnersOf = (key: string) =>
    groups.filter((g) => g.keys.includes(key)).reduce<GroupMember[]>((most, g) => (g.members.length > most.length ? g.members : most), []);
  const out: ProjectionStatus[] = [];
  for (const p of projections) {
    const vs: VersionStatus[] = [];
    for (const v of p.versions) {
      const key = schemaOf(p.name, v.version);
      const rows: Record<string, number> = {};
      for (const table of PROJECTIONS[p.name]!.views) rows[table] = await rowCount(db, key, table);
      vs.push({ ...v, rows, runners: runnersOf(key) });
    }
    out.push({ ...p, versions: vs });
  }
  return out;
}

/** "name vN" for every version whose positions lie past the end of the log (see pastLogEnd): only
 *  positions and ends are read, no row counts, so `npm start` can ask before it starts anything. */
export async function builtFromAnotherLog(db: Db, log: EventLog): Promise<string[]> {
  return (await projectionPositions(db, log)).flatMap((p) =>
    p.versions.filter((v) => v.pastLogEnd > 0).map((v) => `${p.name} v${v.version}`),
  );
}

export class UnknownProjection extends Error {}

export async function rebuild(db: Db, name: string): Promise<number> {
  const projection = PROJECTIONS[name];
  if (!projection) throw new UnknownProjection(`no projection named ${name}; known: ${Object.keys(PROJECTIONS).join(', ')}`);
  // Versions older than the serving one are kept until the next rebuild, for a look back.
  const [row] = (await versions(db)).filter((v) => v.name === name);
  if (row) for (let v = row.current - 1; v >= 1; v--) await sql`DROP SCHEMA IF EXISTS ${sql.id(schemaOf(name, v))} CASCADE`.execute(db);
  return startRebuild(db, projection);
}

// ---- verify: a hash summary of the log against the read model ----

export interface Difference {
  channel: string;
  /** The hour (UTC) whose fragments differ, as an ISO time. */
  hour: string;
  inLog: number;
  inModel: number;
}

interface Leaf {
  channel: string;
  partition: number;
  offset: number;
  hash: Buffer;
  hour: number;
}

const HOUR = 3_600_000;
const leafOf = (
  partition: number,
  offset: number,
  d: Pick<CaptionFragmentReceived, 'channel' | 'station' | 'seq' | 'text' | 'start' | 'end' | 'mode' | 'lang'>,
): Leaf => ({
  channel: d.channel,
  partition,
  offset,
  hour: Math.floor(d.start / HOUR) * HOUR,
  hash: createHash('sha256')
    .update(JSON.stringify([partition, offset, d.station, d.seq, d.text, d.start, d.end, d.mode, d.lang]))
    .digest(),
});

/** channel -> hour -> (hash of its leaves in log order, count); a channel's root hashes its hours. */
function tree(leaves: Leaf[]): Map<string, { root: string; hours: Map<number, { hash: string; count: number }> }> {
  const byChannel = new Map<string, Map<number, Leaf[]>>();
  for (const l of leaves) {
    const hours = byChannel.get(l.channel) ?? new Map<number, Leaf[]>();
    byChannel.set(l.channel, hours);
    hours.set(l.hour, [...(hours.get(l.hour) ?? []), l]);
  }
  const out = new Map<string, { root: string; hours: Map<number, { hash: string; count: number }> }>();
  for (const [channel, hours] of byChannel) {
    const summary = new Map<number, { hash: string; count: number }>();
    const root = createHash('sha256');
    for (const hour of [...hours.keys()].sort((a, b) => a - b)) {
      const ls = hours.get(hour)!.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
      const h = createHash('sha256');
      for (const l of ls) h.update(l.hash);
      const hash = h.digest('hex');
      summary.set(hour, { hash, count: ls.length });
      root.update(`${hour}:${hash}`);
    }
    out.set(channel, { root: root.digest('hex'), hours: summary });
  }
  return out;
}

/** Compares the captions read model with the log up to the positions it has applied. */
export async function verifyCaptions(db: Db, log: EventLog): Promise<{ ok: boolean; checked: number; differences: Difference[] }> {
  const [row] = (await versions(db)).filter((v) => v.name === 'captions');
  const upTo = new Map((await positionsOf(db, 'captions', row!.current)).map((p) => [p.partition, p.next_offset]));
  const ends = await log.offsets('captions');

  // The log side, read from its start up to what the model has applied; a station's repeat
  // dropped as every reader drops it.
  const logLeaves: Leaf[] = [];
  const seqs = new LastSeqs();
  const target = new Set(ends.filter((e) => (upTo.get(e.partition) ?? e.low) > e.low).map((e) => e.partition));
  if (target.size > 0) {
    let allRead!: () => void;
    const read = new Promise<void>((r) => (allRead = r));
    const finished = new Set<number>();
    const consumer = await log.consume({
      groupId: EventLog.privateGroup('castlog-verify'),
      topics: ['captions'],
      startAt: async (_t, partition) => ends.find((e) => e.partition === partition)!.low,
      onBatch: async (b) => {
        if (!target.has(b.partition) || finished.has(b.partition)) return;
        const stop = upTo.get(b.partition)!;
        for (const r of b.records) {
          if (r.offset >= stop) break;
          if (r.event.type !== 'CaptionFragmentReceived' || !seqs.admit(r.event.data)) continue;
          logLeaves.push(leafOf(b.partition, r.offset, r.event.data));
        }
        if ((b.records.at(-1)?.offset ?? -1) + 1 >= stop) {
          finished.add(b.partition);
          if (finished.size === target.size) allRead();
        }
      },
    });
    await read;
    await consumer.stop();
  }

  // The model side.
  const modelLeaves: Leaf[] = [];
  let after = { partition: -1, offset: -1 };
  for (;;) {
    const rows = await fragmentsInLogOrder(db, after, 10_000);
    if (!rows.length) break;
    for (const r of rows) {
      if (r.offset >= (upTo.get(r.partition) ?? 0)) continue;
      modelLeaves.push(leafOf(r.partition, r.offset, fragmentOf(r)));
    }
    after = { partition: rows.at(-1)!.partition, offset: rows.at(-1)!.offset };
  }

  const a = tree(logLeaves);
  const b = tree(modelLeaves);
  const differences: Difference[] = [];
  for (const channel of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(channel);
    const y = b.get(channel);
    if (x && y && x.root === y.root) continue;
    for (const hour of new Set([...(x?.hours.keys() ?? []), ...(y?.hours.keys() ?? [])])) {
      const hx = x?.hours.get(hour);
      const hy = y?.hours.get(hour);
      if (hx?.hash !== hy?.hash)
        differences.push({ channel, hour: new Date(hour).toISOString(), inLog: hx?.count ?? 0, inModel: hy?.count ?? 0 });
    }
  }
  differences.sort((p, q) => p.channel.localeCompare(q.channel) || p.hour.localeCompare(q.hour));
  return { ok: differences.length === 0, checked: logLeaves.length, differences };
}
