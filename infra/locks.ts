// Every Postgres advisory lock castlog takes, named in one place, with one key scheme: the lock on
// "<name>" is hashtextextended('castlog:<name>', 0). Session locks (the relay, uploads) live as
// long as the connection that took them; transaction locks (sweeps, registering projections) end
// with their transaction.
import { sql, type RawBuilder } from 'kysely';

export const LOCKS = {
  /** One relay publishes at a time; the others stand by. */
  relay: 'relay',
  /** One api process records expired stream leases at a time. */
  leaseSweep: 'lease-sweep',
  /** Registering a projection's first version, or swapping versions, one process at a time. */
  projectionVersions: 'projection-versions',
  /** Held (shared) by a transaction that said it appends no events: the relay publishes past it.
   *  Taken only by castlog_writes_no_events() (migration 0024, which names the key itself). */
  writesNoEvents: 'writes-no-events',
  /** Creating the full-text search functions once, however many migrations race. */
  searchFunctions: 'search-functions',
  /** A notifier process holds its own while it lives: a delivery it left 'sending' is its dead copy's. */
  notifier: (instanceId: string) => `notifier:${instanceId}`,
  /** One request at a time touches an upload, across api processes (tus's locker). */
  upload: (uploadId: string) => `upload:${uploadId}`,
} as const;

/** The text the key of lock `name` is made from: pass it as the $1 of KEY_SQL. */
export const lockText = (name: string): string => `castlog:${name}`;

/** The key, in SQL that takes the lock's text as its only parameter ($1). */
export const KEY_SQL = 'hashtextextended($1, 0)';

/** The key of lock `name`, for kysely's sql templates. */
export const lockKey = (name: string): RawBuilder<bigint> => sql<bigint>`hashtextextended(${lockText(name)}, 0)`;
