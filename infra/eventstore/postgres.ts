// The event store in Postgres: an `events` table with unique (stream, version). The unique key is
// the guard against a concurrent writer; the snapshot is written in the same transaction.
import { sql, type Kysely } from 'kysely';
import type { AvroCodec } from '../../schemas/codec.ts';
import { newMeta } from '../../schemas/envelope.ts';
import type { WriteDb as Db } from '../write-tables.ts';
import { Overloaded, type Gate } from '../gate.ts';
import {
  EventStoreUnavailable,
  WrongExpectedVersion,
  type AppendOptions,
  type DomainEvent,
  type EventStore,
  type LoadOptions,
  type StreamRead,
} from './port.ts';

const UNIQUE_VIOLATION = '23505';
/** Bump when a decider's state shape changes: older snapshots are then ignored and rebuilt. */
const SNAPSHOT_FORMAT = 1;
/**
 * The first append after a quiet spell wakes the relay at once; later ones share a notification
 * sent this long after the last. The relay lets events gather for as long after every step that
 * published any (its GATHER_MS), so a busy spell loses nothing by it, and each notification skipped
 * is a round trip here and a wake-up of the relay and two Postgres backends: at 300 decisions/s,
 * 9% of the machine's CPU per decision.
 */
const NOTIFY_SPACING_MS = 25;

function unavailable(err: unknown): never {
  if (err instanceof Overloaded) throw err; // busy, not down
  throw new EventStoreUnavailable(`event store unreachable: ${(err as Error).message}`);
}

export class PostgresEventStore implements EventStore {
  /** `gate`, when given, bounds how many loads and appends run at once (the api's decisions). */
  constructor(
    private readonly db: Db,
    private readonly codec: AvroCodec,
    private readonly gate?: Gate,
  ) {}

  private run<T>(work: () => Promise<T>): Promise<T> {
    return this.gate ? this.gate.run(work) : work();
  }

  /** One round trip: the snapshot (if its format is current), the events after it, and which of `opts.exists` have an event. */
  async load<E extends DomainEvent, S>(
    stream: string,
    initial: () => S,
    evolve: (s: S, e: E) => S,
    opts: LoadOptions = {},
  ): Promise<StreamRead<S>> {
    const exists = opts.exists ?? [];
    const existsRows = exists.length
      ? sql`UNION ALL
      SELECT 2, 0, NULL, NULL, stream FROM events WHERE stream = ANY(${exists}::text[]) AND version = 1`
      : sql``;
    const { rows } = await this.run(() =>
      sql<{ kind: number; version: number; state: unknown; data: Buffer | null; stream: string | null }>`
      WITH snap AS (SELECT version, state FROM snapshots
                    WHERE stream = ${stream} AND state->'format' = ${JSON.stringify(SNAPSHOT_FORMAT)}::jsonb)
      SELECT 0 AS kind, version, state, NULL::bytea AS data, NULL::text AS stream FROM snap
      UNION ALL
      SELECT 1, version, NULL, data, NULL FROM events WHERE stream = ${stream} AND version > coalesce((SELECT version FROM snap), 0)
      ${existsRows}
      ORDER BY kind, version`
        .execute(this.db)
        .catch(unavailable),
    );
    let state = initial();
    let version = 0;
    const existing = new Set<string>();
    for (const row of rows) {
      if (row.kind === 2) {
        existing.add(row.stream!);
      } else if (row.kind === 0) {
        state = (row.state as { state: S }).state;
        version = row.version;
      } else {
        const { type, data } = this.codec.decode(row.data!);
        state = evolve(state, { type, data } as E);
        version = row.version;
      }
    }
    return opts.exists ? { version, state, existing } : { version, state };
  }

  /**
   * One statement, so one round trip and its own transaction: the events (the unique
   * (stream, version) is the guard) and the snapshot. The relay is woken once it has committed.
   */
  async append<S>(stream: string, expectedVersion: number, events: DomainEvent[], opts: AppendOptions<S>): Promise<{ version: number }> {
    if (!events.length) return { version: expectedVersion };
    const rows = events.map((e, i) => {
      const meta = newMeta(e.type, opts.source, opts.correlationId, opts.causationId);
      const version = expectedVersion + i + 1;
      const encoded = JSON.stringify({ ...meta, stream, streamVersion: version });
      return sql`(${stream}, ${version}, ${e.type}, ${opts.key}, ${this.codec.encode(e.type, e.data)}, ${encoded}::jsonb)`;
    });
    const version = expectedVersion + events.length;
    const snapshot =
      opts.snapshot === undefined
        ? sql``
        : sql`, snap AS (
          INSERT INTO snapshots (stream, version, state)
          VALUES (${stream}, ${version}, ${JSON.stringify({ format: SNAPSHOT_FORMAT, state: opts.snapshot })}::jsonb)
          ON CONFLICT (stream) DO UPDATE SET version = excluded.version, state = excluded.state)`;
    try {
      await this.run(() =>
        sql`
        WITH appended AS (INSERT INTO events (stream, version, type, key, data, meta) VALUES ${sql.join(rows)})${snapshot}
        SELECT 1`.execute(this.db),
      );
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) throw new WrongExpectedVersion(stream, expectedVersion);
      if (err instanceof Overloaded) throw err;
      unavailable(err);
    }
    this.wakeRelay();
    return { version };
  }

  private notifying = false;
  private notifyAgain = false;

  /**
   * NOTIFY after the commit, not inside the appending transaction: a NOTIFY holds a database-wide
   * lock from its commit's start to its end, WAL flush included, so every append waited for the
   * flush of the one before (no group commit). A NOTIFY of its own writes no WAL and holds the lock
   * for microseconds. One at a time, not awaited, and at most one per NOTIFY_SPACING_MS: appends
   * meanwhile share the next one. A lost one costs the relay its poll interval.
   */
  private wakeRelay(): void {
    if (this.notifying) {
      this.notifyAgain = true;
      return;
    }
    this.notifying = true;
    void this.run(() => sql`SELECT pg_notify('castlog_events', '')`.execute(this.db))
      .catch(() => undefined)
      .finally(() =>
        setTimeout(() => {
          this.notifying = false;
          if (this.notifyAgain) {
            this.notifyAgain = false;
            this.wakeRelay();
          }
        }, NOTIFY_SPACING_MS).unref(),
      );
  }
}

/**
 * Says, as a transaction's first statement, that it will append no events (a rebuild's index
 * build, a swap): the relay then publishes past it while it runs, where any other open transaction
 * of this database holds back every event committed after it began. An insert into `events` later
 * in it is refused; said after the transaction has written anything, it is refused itself.
 */
export async function writesNoEvents(trx: Kysely<any>): Promise<void> {
  await sql`SELECT castlog_writes_no_events()`.execute(trx);
}
