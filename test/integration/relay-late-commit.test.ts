// The relay never skips a transaction that commits late: an event whose transaction is still open
// when later ones commit holds those back, and once it commits it goes out first. (Anyone changing
// the relay's horizon must keep these tests passing.) A transaction open in another database of the
// same server holds nothing back, unless the relay cannot tell whose it is; nor does one of its own
// database that said, before writing anything, that it appends no events (a rebuild's index build).
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { viewerStream } from '../../domain/streams/viewer.ts';
import { HORIZON, Relay } from '../../apps/relay/relay.ts';
import { ensureRegistered } from '../../projections/versions.ts';
import type { Projection } from '../../projections/projection.ts';
import { createLogger } from '../../infra/logger.ts';
import { sleep } from '../../infra/retry.ts';
import { System, metricValue, readTopic, waitFor } from '../support/system.ts';
import { INSERT_EVENT, issuedRow as eventRow } from '../support/event-rows.ts';

let sys: System;
beforeAll(async () => {
  sys = await System.create();
  await sys.start('relay');
});
afterAll(() => sys?.stop());

/** Rows of one test share one Kafka key, so one partition: the order the relay published them in
 *  is the order a reader sees (across partitions there is none). */
const issuedRow = (userId: string, key: string, version = 1) => eventRow(sys.log.codec, userId, key, version);

it('holds back what committed after an open transaction, then publishes the late one first', async () => {
  const late = randomUUID();
  const early = randomUUID();
  const topic = await readTopic(sys.log, 'streams');
  const open = new pg.Client({ connectionString: sys.env.DATABASE_URL });
  const other = new pg.Client({ connectionString: sys.env.DATABASE_URL });
  await Promise.all([open.connect(), other.connect()]);
  try {
    // The late one gets its transaction id first, and commits last.
    await open.query('BEGIN');
    await open.query(INSERT_EVENT, issuedRow(late, late));
    await other.query(INSERT_EVENT, issuedRow(early, late));
    const users = () => topic.records.map((r) => (r.event.data as { userId: string }).userId).filter((u) => u === late || u === early);

    // While the late one is open, the one committed after it is not published: publishing it would
    // put it ahead of the late one, or skip the late one for good.
    await new Promise((r) => setTimeout(r, 1500));
    expect(users()).toEqual([]);

    // An operator sees why: the gauge says how long the holder has run, and past 5 s the log names
    // it by the pid pg_stat_activity shows (what pg_terminate_backend takes).
    const pid = (await open.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    const heldFor = () => metricValue(sys.relayPort, 'castlog_relay_held_back_seconds');
    await waitFor('the gauge to say the relay is held back', async () => ((await heldFor()) ?? 0) >= 1, 10_000);
    const warning = () =>
      sys
        .said('relay')
        .split('\n')
        .filter((l) => l.includes('relay held back'))
        .map((l) => JSON.parse(l) as { backendPid: number; waiting: number; database: string });
    await waitFor('a warning naming the holder', () => warning().length > 0, 15_000);
    expect(warning()).toEqual([
      expect.objectContaining({ backendPid: pid, waiting: 1, database: new URL(sys.env.DATABASE_URL!).pathname.slice(1) }),
    ]);
    expect(users()).toEqual([]);

    await open.query('COMMIT');
    await waitFor('both on the log', () => users().length >= 2, 15_000);
    const firsts = users().filter((u, i, all) => all.indexOf(u) === i);
    expect(firsts).toEqual([late, early]);
    await waitFor('the gauge back at 0', async () => (await heldFor()) === 0, 10_000);
    expect(warning()).toHaveLength(1);
  } finally {
    await open.end().catch(() => undefined);
    await other.end().catch(() => undefined);
    await topic.stop();
  }
});

/** A connection to another database of the same server, as the test's own role. */
function elsewhere(): pg.Client {
  const url = new URL(sys.env.DATABASE_URL!);
  url.pathname = '/postgres';
  return new pg.Client({ connectionString: url.toString() });
}

/** The id of the transaction open on `c`, given it if it had none. */
async function idOf(c: pg.Client): Promise<bigint> {
  const { rows } = await c.query<{ id: string }>('SELECT pg_current_xact_id()::text AS id');
  return BigInt(rows[0]!.id);
}

/** Opens a transaction on `c` that has a transaction id, and returns it. */
async function openWithId(c: pg.Client): Promise<bigint> {
  await c.query('BEGIN');
  return idOf(c);
}

it('publishes while a transaction older than its events is open in another database', async () => {
  const user = randomUUID();
  const topic = await readTopic(sys.log, 'streams');
  const away = elsewhere();
  const here = new pg.Client({ connectionString: sys.env.DATABASE_URL });
  await Promise.all([away.connect(), here.connect()]);
  try {
    // Older than the event, and still open when it commits: before, the relay waited for it.
    await openWithId(away);
    await here.query(INSERT_EVENT, issuedRow(user, user));
    await waitFor(
      "published with the other database's transaction still open",
      () => topic.records.some((r) => (r.event.data as { userId: string }).userId === user),
      15_000,
    );
    const { rows } = await away.query<{ open: boolean }>('SELECT pg_current_xact_id_if_assigned() IS NOT NULL AS open');
    expect(rows[0]!.open).toBe(true);
  } finally {
    await away.query('ROLLBACK').catch(() => undefined);
    await away.end().catch(() => undefined);
    await here.end().catch(() => undefined);
    await topic.stop();
  }
});

const horizonOf = async (c: pg.Client) => BigInt((await c.query<{ h: string }>(`SELECT ${HORIZON}::text AS h`)).rows[0]!.h);

it("passes over another database's transaction, as any role, and not over its own database's", async () => {
  // A role with no privileges at all, as a deployment's owner role may be (backend_xid is readable
  // by every role, unlike a session's query).
  const role = `t_relay_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: sys.env.DATABASE_URL });
  await admin.connect();
  const password = randomBytes(12).toString('hex');
  await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
  const asRole = new URL(sys.env.DATABASE_URL!);
  asRole.username = role;
  asRole.password = password;
  const plain = new pg.Client({ connectionString: asRole.toString() });
  const away = elsewhere();
  const here = new pg.Client({ connectionString: sys.env.DATABASE_URL });
  try {
    await Promise.all([plain.connect(), away.connect(), here.connect()]);
    // Each time, a transaction that began later has ended, so the horizon could pass the open one.
    const other = await openWithId(away);
    await admin.query('SELECT pg_current_xact_id()');
    // Another test file's transaction that ends between the snapshot and the read of
    // pg_stat_activity cannot be placed and bounds that one answer: ask again.
    const passes = async (c: pg.Client) => (await horizonOf(c)) > other;
    await waitFor("the horizon past the other database's transaction, as superuser", () => passes(admin), 5000, 20);
    await waitFor("the horizon past the other database's transaction, as a plain role", () => passes(plain), 5000, 20);
    await away.query('ROLLBACK');

    const own = await openWithId(here);
    await admin.query('SELECT pg_current_xact_id()');
    expect(await horizonOf(admin)).toBeLessThanOrEqual(own);
    expect(await horizonOf(plain)).toBeLessThanOrEqual(own);
    await here.query('ROLLBACK');
  } finally {
    await Promise.all([plain, away, here].map((c) => c.end().catch(() => undefined)));
    await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
    await admin.end();
  }
});

it('publishes in transaction-id order where the ids gain a digit, and leaves nothing behind its checkpoint', async () => {
  // Ids 8, 9, 10, 11 stand for any ids crossing a power of ten (9,999 -> 10,000 comes on every
  // server). The relay's ORDER BY once sorted them as text ("10" < "8"): with a batch of 2 it sent
  // versions 3 and 4, took 11 for its checkpoint, and never sent 1 and 2.
  const fresh = await System.create();
  const client = new pg.Client({ connectionString: fresh.env.DATABASE_URL });
  await client.connect();
  const topic = await readTopic(fresh.log, 'streams');
  try {
    const userId = randomUUID();
    const stream = viewerStream(userId);
    for (const [i, tx] of [8, 9, 10, 11].entries()) {
      await client.query(
        'INSERT INTO events (tx_id, stream, version, type, key, data, meta) VALUES ($1::xid8, $2, $3, $4, $5, $6, $7::jsonb)',
        [String(tx), ...issuedRow(userId, userId, i + 1)],
      );
    }
    const relay = new Relay(fresh.db, fresh.log, createLogger('test', 'silent'), 'digits', 2);
    await relay.loadCheckpoint();
    let published = 0;
    for (let n; (n = await relay.step()) > 0;) published += n;
    const versions = () => topic.records.filter((r) => r.meta.stream === stream).map((r) => r.meta.streamVersion);
    await waitFor('the four versions on the log', () => versions().length >= 4, 10_000).catch(() => undefined);
    expect(versions()).toEqual([1, 2, 3, 4]);
    expect(published).toBe(4);
    expect((await relay.loadCheckpoint()).txId).toBe('11');
  } finally {
    await topic.stop();
    await client.end();
    await fresh.stop();
  }
});

it('publishes past a transaction of its own database that said first it appends no events, which then cannot', async () => {
  const user = randomUUID();
  const topic = await readTopic(sys.log, 'streams');
  const none = new pg.Client({ connectionString: sys.env.DATABASE_URL });
  const here = new pg.Client({ connectionString: sys.env.DATABASE_URL });
  await Promise.all([none.connect(), here.connect()]);
  try {
    await none.query('BEGIN');
    await none.query('SELECT castlog_writes_no_events()');
    const id = await idOf(none);
    await here.query(INSERT_EVENT, issuedRow(user, user));
    await waitFor(
      'published with the transaction that writes no events still open',
      () => topic.records.some((r) => (r.event.data as { userId: string }).userId === user),
      15_000,
    );
    expect(await horizonOf(here)).toBeGreaterThan(id);
    // It said so: an event from it would be behind what was published, and is refused.
    await expect(none.query(INSERT_EVENT, issuedRow(randomUUID(), user))).rejects.toThrow(/writes no events/);
  } finally {
    await none.query('ROLLBACK').catch(() => undefined);
    await Promise.all([none, here].map((c) => c.end().catch(() => undefined)));
    await topic.stop();
  }
});

it('is held back by a transaction that wrote before saying it appends none, or took its word back', async () => {
  const c = new pg.Client({ connectionString: sys.env.DATABASE_URL });
  const other = new pg.Client({ connectionString: sys.env.DATABASE_URL });
  await Promise.all([c.connect(), other.connect()]);
  try {
    // Said after writing: refused (it may have appended events already), and it still holds back
    // (in a savepoint, so that the refusal does not end the transaction).
    const wrote = await openWithId(c);
    await c.query(INSERT_EVENT, issuedRow(randomUUID(), 'k'));
    await c.query('SAVEPOINT before');
    await expect(c.query('SELECT castlog_writes_no_events()')).rejects.toThrow(/before the transaction writes anything/);
    await c.query('ROLLBACK TO SAVEPOINT before');
    await other.query('SELECT pg_current_xact_id()');
    expect(await horizonOf(other)).toBeLessThanOrEqual(wrote);
    await c.query('ROLLBACK');

    // Said in a savepoint rolled back: the word and its lock go together, and it may append again.
    await c.query('BEGIN');
    await c.query('SAVEPOINT s');
    await c.query('SELECT castlog_writes_no_events()');
    await c.query('ROLLBACK TO SAVEPOINT s');
    const own = await idOf(c);
    await other.query('SELECT pg_current_xact_id()');
    expect(await horizonOf(other)).toBeLessThanOrEqual(own);
    const user = randomUUID();
    await c.query(INSERT_EVENT, issuedRow(user, user));
    await c.query('ROLLBACK');
  } finally {
    await c.query('ROLLBACK').catch(() => undefined);
    await Promise.all([c, other].map((x) => x.end().catch(() => undefined)));
  }
});

it("publishes a decision's event while a projection version's index build runs", async () => {
  // ensureRegistered builds a first version's indexes in a versions transaction, as a rebuild does
  // before its swap; this build takes 3 s. The event is appended after the build began.
  const name = `t_slowidx_${randomBytes(4).toString('hex')}`;
  const projection: Projection<'streams'> = {
    name,
    topics: ['streams'],
    views: [`${name}_rows`],
    createTables: async (db) => void (await sql`CREATE TABLE ${sql.id(`${name}_rows`)} (id int)`.execute(db)),
    indexes: [
      async (db) => {
        await sql`CREATE INDEX ${sql.id(`${name}_by_id`)} ON ${sql.id(`${name}_rows`)} (id)`.execute(db);
        await sql`SELECT pg_sleep(3)`.execute(db);
      },
    ],
    apply: async () => undefined,
  };
  const user = randomUUID();
  const topic = await readTopic(sys.log, 'streams');
  const here = new pg.Client({ connectionString: sys.env.DATABASE_URL });
  await here.connect();
  try {
    let registered = false;
    const registering = ensureRegistered(sys.db, projection).then(() => void (registered = true));
    await waitFor('the index build running', async () => {
      const { rows } = await here.query(
        `SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()`,
      );
      return rows.length > 0;
    });
    await here.query(INSERT_EVENT, issuedRow(user, user));
    await waitFor(
      'published before the index build ends',
      () => topic.records.some((r) => (r.event.data as { userId: string }).userId === user),
      2500,
    );
    expect(registered).toBe(false);
    await registering;
  } finally {
    await here.end().catch(() => undefined);
    await topic.stop();
  }
});

it('skips nothing while writers and transactions that said they append none come and go on the same connections', async () => {
  // The relay passes over a transaction by its id's lock and the lock of its word, matched in one
  // read of the lock table; a connection alternating between the two kinds is where matching by
  // backend instead of by transaction would pass over a writer. Every committed event must come out,
  // in each stream's version order.
  const fresh = await System.create();
  const topic = await readTopic(fresh.log, 'streams');
  const relay = new Relay(fresh.db, fresh.log, createLogger('test', 'silent'), 'race', 7);
  await relay.loadCheckpoint();
  const clients = Array.from({ length: 6 }, () => new pg.Client({ connectionString: fresh.env.DATABASE_URL }));
  await Promise.all(clients.map((c) => c.connect()));
  const committed: string[] = [];
  const until = Date.now() + 6000;
  let refused = 0;
  let declared = 0;
  try {
    const work = clients.map(async (c) => {
      const userId = randomUUID();
      const stream = viewerStream(userId);
      let version = 0;
      while (Date.now() < until) {
        await c.query('BEGIN');
        if (Math.random() < 0.5) {
          declared++;
          await c.query('SELECT castlog_writes_no_events()');
          await c.query('SELECT pg_current_xact_id()');
          await sleep(Math.random() * 40);
          if (Math.random() < 0.1) {
            await c.query(INSERT_EVENT, issuedRow(userId, userId, version + 1)).catch(() => void refused++);
            await c.query('ROLLBACK');
            continue;
          }
          await c.query('COMMIT');
        } else {
          // The id first, the event later: a writer old enough for the relay to pass if it misplaced it.
          await c.query('SELECT pg_current_xact_id()');
          await sleep(Math.random() * 30);
          await c.query(INSERT_EVENT, issuedRow(userId, userId, version + 1));
          await sleep(Math.random() * 10);
          if (Math.random() < 0.2) {
            await c.query('ROLLBACK');
            continue;
          }
          await c.query('COMMIT');
          version++;
          committed.push(`${stream}@${version}`);
        }
      }
    });
    let stepping = true;
    const stepper = (async () => {
      while (stepping) if ((await relay.step()) === 0) await sleep(2);
    })();
    await Promise.all(work);
    stepping = false;
    await stepper;
    while ((await relay.step()) > 0);
    const seen = () => topic.records.filter((r) => r.meta.stream).map((r) => `${r.meta.stream}@${r.meta.streamVersion}`);
    await waitFor('every committed event on the log', () => seen().length >= committed.length, 15_000).catch(() => undefined);
    expect(new Set(seen())).toEqual(new Set(committed));
    expect(seen()).toHaveLength(committed.length);
    for (const r of new Set(topic.records.map((x) => x.meta.stream))) {
      const versions = topic.records.filter((x) => x.meta.stream === r).map((x) => x.meta.streamVersion);
      expect(versions).toEqual(versions.map((_, k) => k + 1));
    }
    expect(declared).toBeGreaterThan(50);
    expect(refused).toBeGreaterThan(0);
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await topic.stop();
    await fresh.stop();
  }
});
