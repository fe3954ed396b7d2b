import { sql, type Kysely } from 'kysely';

// A transaction that will never append an event can say so, and the relay then publishes past it
// while it runs (a rebuild's index build or swap held every decision's event back for seconds).
// Saying so takes a shared advisory lock the relay can see in pg_locks with the transaction's id,
// and marks the transaction; a marked transaction's insert into `events` is refused. Only a
// transaction that has written nothing yet may say it: one that inserted events first would
// otherwise be passed over with them. The lock's key is castlog's scheme (infra/locks.ts) for
// 'writes-no-events'; the relay's HORIZON names the same key.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE FUNCTION castlog_writes_no_events() RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
      IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RAISE EXCEPTION 'castlog_writes_no_events() must come before the transaction writes anything'
          USING ERRCODE = 'object_not_in_prerequisite_state';
      END IF;
      PERFORM pg_advisory_xact_lock_shared(hashtextextended('castlog:writes-no-events', 0));
      PERFORM set_config('castlog.writes_no_events', 'on', true);
    END $$`.execute(db);
  await sql`CREATE FUNCTION castlog_events_refused() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'this transaction said it writes no events (castlog_writes_no_events)'
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END $$`.execute(db);
  // Once per statement, and the function only runs in a marked transaction.
  await sql`CREATE TRIGGER events_refused_when_writing_none BEFORE INSERT ON events FOR EACH STATEMENT
    WHEN (current_setting('castlog.writes_no_events', true) = 'on') EXECUTE FUNCTION castlog_events_refused()`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER events_refused_when_writing_none ON events`.execute(db);
  await sql`DROP FUNCTION castlog_events_refused()`.execute(db);
  await sql`DROP FUNCTION castlog_writes_no_events()`.execute(db);
}
