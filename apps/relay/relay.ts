// Publishes every event appended to the event store onto its Kafka topic, in transaction-id order
// (for one stream, its commit order: a version is appended only after the one before committed),
// at least once. It reads only below the oldest transaction still running in this database that
// could append events (HORIZON), so an event whose transaction commits late is never skipped; its
// checkpoint advances only after Kafka acks.
import { sql } from 'kysely';
import type { Db } from '../../projections/database.ts';
import type { EventLog } from '../../infra/kafka/index.ts';
import { LOCKS, lockText } from '../../infra/locks.ts';
import type { Logger } from '../../infra/logger.ts';
import type { EventMeta } from '../../schemas/envelope.ts';
import type { EventType } from '../../schemas/types.generated.ts';

export interface Checkpoint {
  txId: string;
  position: number;
}

/** The key of the lock a transaction that appends no events holds (castlog_writes_no_events()). */
const WRITES_NONE_KEY = `hashtextextended('${lockText(LOCKS.writesNoEvents)}', 0)`;

/**
 * Below this transaction id, every transaction that could have written to this database has
 * ended. Ids are the server's, so the snapshot's oldest running transaction may be another
 * database's (a bulk load, a report, another castlog's rebuild), which alone held every relay on
 * the server back for as long as it ran. A running transaction is passed over only when
 * `pg_stat_activity` shows it to a backend connected to another database (a backend never changes
 * database, and an id is never given twice; any role may read another's `backend_xid`), or when
 * `pg_locks` shows it holding the lock of a transaction that said, before it wrote anything, that
 * it appends no events (a rebuild's index build or swap; such a one's inserts into `events` are
 * refused). Its id lock and that lock are matched by virtual transaction in one read of the lock
 * table, so a transaction that ended meanwhile is not mistaken for its backend's next. One the
 * relay cannot place still holds it back: one that ended after the snapshot was taken (its events,
 * if it wrote any, are not in this snapshot) or a prepared one (no backend).
 * Evaluated in the reading statement, so the snapshot is the one the events are read with.
 */
export const HORIZON = `(
  SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
  FROM pg_snapshot_xip(pg_current_snapshot()) AS x
  WHERE x::xid NOT IN (
      SELECT backend_xid FROM pg_stat_activity
      WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database())
    AND x::xid NOT IN (
      SELECT id.transactionid FROM pg_locks id JOIN pg_locks said ON said.virtualtransaction = id.virtualtransaction
      WHERE id.locktype = 'transactionid' AND id.mode = 'ExclusiveLock' AND id.granted
        AND said.locktype = 'advisory' AND said.granted AND said.objsubid = 1
        AND ((said.classid::int8 << 32) | said.objid::int8) = ${WRITES_NONE_KEY}))`;

/** What keeps committed events from being published, as the relay saw it. */
export interface HeldBack {
  /** Committed events past the checkpoint at or above the horizon (counted up to 10,000). */
  waiting: number;
  /** The transaction at the horizon, while pg_stat_activity still shows it. */
  holder?: { pid: number; database: string | null; application: string; seconds: number };
}

interface Row {
  position: number;
  tx_id: string;
  type: string;
  key: string;
  data: Buffer;
  meta: EventMeta;
}

export class Relay {
  private checkpoint: Checkpoint = { txId: '0', position: 0 };

  constructor(
    private readonly db: Db,
    private readonly log: EventLog,
    private readonly logger: Logger,
    readonly name = 'default',
    /** The most events one step reads and publishes. */
    readonly batch = 1000,
  ) {}

  async loadCheckpoint(): Promise<Checkpoint> {
    const row = await this.db
      .selectFrom('relay_checkpoints')
      .select(['tx_id', 'position'])
      .where('name', '=', this.name)
      .executeTakeFirst();
    this.checkpoint = row ? { txId: row.tx_id, position: row.position } : { txId: '0', position: 0 };
    return this.checkpoint;
  }

  /** Asks what holds committed events back, if anything: a diagnostic, for a step that found none. */
  async heldBack(): Promise<HeldBack> {
    const { txId, position } = this.checkpoint;
    const { rows } = await sql<{
      waiting: number;
      pid: number | null;
      database: string | null;
      application: string | null;
      seconds: number | null;
    }>`
      WITH h AS (SELECT ${sql.raw(HORIZON)} AS horizon)
      SELECT (SELECT count(*)::int FROM (
                SELECT 1 FROM events WHERE (tx_id, position) > (${txId}::xid8, ${position}) AND tx_id >= h.horizon
                LIMIT 10000) w) AS waiting,
             a.pid, a.datname AS database, a.application_name AS application,
             extract(epoch FROM clock_timestamp() - a.xact_start)::float8 AS seconds
      FROM h LEFT JOIN pg_stat_activity a ON a.backend_xid = h.horizon::xid
      LIMIT 1`.execute(this.db);
    const r = rows[0]!;
    if (!r.waiting || r.pid === null) return { waiting: r.waiting };
    return { waiting: r.waiting, holder: { pid: r.pid, database: r.database, application: r.application ?? '', seconds: r.seconds ?? 0 } };
  }

  /**
   * Publishes the next batch; returns how many events it published. `stillHeld` says whether this
   * copy still holds the relay lock: once it does not, nothing more is published and the
   * checkpoint is left to the copy that does (what was sent meanwhile is a repeat at worst).
   */
  async step(stillHeld: () => boolean = () => true): Promise<number> {
    if (!stillHeld()) return 0;
    const { txId, position } = this.checkpoint;
    // ORDER BY names the table's columns: a bare `tx_id` there is the output column, the id as
    // text, and "10000" sorts before "9999" — every time transaction ids gained a digit, a batch
    // went out of order, its checkpoint (its last row) fell behind rows it had sent, and with a
    // full batch rows could be left behind the checkpoint for good.
    const { rows } = await sql<Row>`
      SELECT position, tx_id::text AS tx_id, type, key, data, meta FROM events
      WHERE (events.tx_id, events.position) > (${txId}::xid8, ${position})
        AND events.tx_id < ${sql.raw(HORIZON)}
      ORDER BY events.tx_id, events.position
      LIMIT ${this.batch}`.execute(this.db);
    if (!rows.length || !stillHeld()) return 0;
    await this.log.appendEncodedAll(rows.map((r) => ({ type: r.type as EventType, key: r.key, value: r.data, meta: r.meta })));
    if (!stillHeld()) return rows.length;
    const last = rows.at(-1)!;
    this.checkpoint = { txId: last.tx_id, position: Number(last.position) };
    // Without waiting for the WAL flush (set_config(…, true) lasts to this statement's commit): a
    // checkpoint lost with Postgres only republishes what Kafka already has, and a flush per step
    // made every decision's own commit wait behind the relay's.
    await sql`
      WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
      INSERT INTO relay_checkpoints (name, tx_id, position)
      SELECT ${this.name}, ${last.tx_id}::xid8, ${Number(last.position)} FROM async
      ON CONFLICT (name) DO UPDATE SET tx_id = excluded.tx_id, position = excluded.position`.execute(this.db);
    return rows.length;
  }
}
