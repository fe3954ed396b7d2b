// The event store in Postgres: an `events` table with unique (stream, version). The unique key is
// the guard against a concurrent writer; the snapshot is written in the same transaction.
import { sql } from 'kysely';
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
  type StreamRead,
} from './port.ts';

const UNIQUE_VIOLATION = '23505';
/** Bump when a decider's state shape changes: older snapshots are then ignored and rebuilt. */
const SNAPSHOT_FORMAT = 1;

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

  /** One round trip: the snapshot (if its format is current) and the events after it. */
  async load<E extends DomainEvent, S>(stream: string, initial: () => S, evolve: (s: S, e: E) => S): Promise<StreamRead<S>> {
    const { rows } = await this.run(() =>
      sql<{ is_event: boolean; version: number; state: unknown; data: Buffer | null }>`
      WITH snap AS (SELECT version, state FROM snapshots
                    WHERE stream = ${stream} AND state->'format' = ${JSON.stringify(SNAPSHOT_FORMAT)}::jsonb)
      SELECT false AS is_event, version, state, NULL::bytea AS data FROM snap
      UNION ALL
      SELECT true, version, NULL, data FROM events WHERE stream = ${stream} AND version > coalesce((SELECT version FROM snap), 0)
      ORDER BY is_event, version`
        .execute(this.db)
        .catch(unavailable),
    );
    let state = initial();
    let version = 0;
    for (const row of rows) {
      if (!row.is_event) {
        state = (row.state as { state: S }).state;
      } else {
        const { type, data } = this.codec.decode(row.data!);
        state = evolve(state, { type, data } as E);
      }
      version = row.version;
    }
    return { version, state };
  }

  /**
   * One statement, so one round trip and its own transaction: the events (the unique
   * (stream, version) is the guard), the snapshot, and a NOTIFY that wakes the relay.
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
        SELECT pg_notify('castlog_events', '')`.execute(this.db),
      );
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) throw new WrongExpectedVersion(stream, expectedVersion);
      if (err instanceof Overloaded) throw err;
      unavailable(err);
    }
    return { version };
  }
}
