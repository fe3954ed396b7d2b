// The event store in Postgres: an `events` table with unique (stream, version). The unique key is
// the guard against a concurrent writer; the snapshot is written in the same transaction.
import { sql } from 'kysely';
import type { AvroCodec } from '../../schemas/codec.ts';
import { newMeta } from '../../schemas/envelope.ts';
import type { Db } from '../db.ts';
import { EventStoreUnavailable, WrongExpectedVersion, type AppendOptions, type DomainEvent, type EventStore, type StreamRead } from './port.ts';

const UNIQUE_VIOLATION = '23505';
/** Bump when a decider's state shape changes: older snapshots are then ignored and rebuilt. */
const SNAPSHOT_FORMAT = 1;

function unavailable(err: unknown): never {
  throw new EventStoreUnavailable(`event store unreachable: ${(err as Error).message}`);
}

export class PostgresEventStore implements EventStore {
  constructor(private readonly db: Db, private readonly codec: AvroCodec) {}

  async load<E extends DomainEvent, S>(stream: string, initial: () => S, evolve: (s: S, e: E) => S): Promise<StreamRead<E, S>> {
    const snap = await this.db.selectFrom('snapshots').select(['version', 'state']).where('stream', '=', stream).executeTakeFirst().catch(unavailable);
    const usable = snap && (snap.state as { format?: number }).format === SNAPSHOT_FORMAT ? snap : undefined;
    let state = usable ? ((usable.state as { state: S }).state) : initial();
    let version = usable?.version ?? 0;
    const rows = await this.db
      .selectFrom('events')
      .select(['version', 'data'])
      .where('stream', '=', stream)
      .where('version', '>', version)
      .orderBy('version')
      .execute()
      .catch(unavailable);
    for (const row of rows) {
      const { type, data } = this.codec.decode(row.data);
      state = evolve(state, { type, data } as E);
      version = row.version;
    }
    return { version, state };
  }

  async append<S>(stream: string, expectedVersion: number, events: DomainEvent[], opts: AppendOptions<S>): Promise<{ version: number }> {
    if (!events.length) return { version: expectedVersion };
    const rows = events.map((e, i) => {
      const meta = newMeta(e.type, opts.source, opts.correlationId, opts.causationId);
      return {
        stream,
        version: expectedVersion + i + 1,
        type: e.type,
        key: opts.key,
        data: this.codec.encode(e.type, e.data),
        meta: JSON.stringify({ ...meta, stream, streamVersion: expectedVersion + i + 1 }),
      };
    });
    const version = expectedVersion + events.length;
    try {
      await this.db.transaction().execute(async (trx) => {
        // The event rows are this transaction's first write, so its id orders it after every
        // transaction whose events it read (the relay relies on that for per-stream order).
        await trx.insertInto('events').values(rows).execute();
        if (opts.snapshot !== undefined) {
          const state = JSON.stringify({ format: SNAPSHOT_FORMAT, state: opts.snapshot });
          await trx
            .insertInto('snapshots')
            .values({ stream, version, state })
            .onConflict((oc) => oc.column('stream').doUpdateSet({ version, state }))
            .execute();
        }
        await sql`SELECT pg_notify('castlog_events', '')`.execute(trx);
      });
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) throw new WrongExpectedVersion(stream, expectedVersion);
      unavailable(err);
    }
    return { version };
  }
}
