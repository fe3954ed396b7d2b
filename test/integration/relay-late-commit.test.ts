// The relay never skips a transaction that commits late: an event whose transaction is still open
// when later ones commit holds those back, and once it commits it goes out first. (Anyone changing
// the relay's horizon must keep these tests passing.) A transaction open in another database of the
// same server holds nothing back, unless the relay cannot tell whose it is.
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { newMeta } from '../../schemas/envelope.ts';
import { viewerStream } from '../../domain/streams/viewer.ts';
import { HORIZON, Relay } from '../../apps/relay/relay.ts';
import { createLogger } from '../../infra/logger.ts';
import { System, metricValue, readTopic, waitFor } from '../support/system.ts';

let sys: System;
beforeAll(async () => {
  sys = await System.create();
  await sys.start('relay');
});
afterAll(() => sys?.stop());

/** A row as the event store writes it for a user id issued (version 1 of the user's stream unless
 *  said). Rows of one test share one Kafka key, so one partition: the order the relay published
 *  them in is the order a reader sees (across partitions there is none). */
function issuedRow(userId: string, key: string, version = 1): unknown[] {
  const stream = viewerStream(userId);
  const meta = { ...newMeta('UserIdIssued', 'test'), stream, streamVersion: version };
  return [stream, version, 'UserIdIssued', key, sys.log.codec.encode('UserIdIssued', { userId, at: Date.now() }), JSON.stringify(meta)];
}
const INSERT = 'INSERT INTO events (stream, version, type, key, data, meta) VALUES ($1, $2, $3, $4, $5, $6::jsonb)';

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
    await open.query(INSERT, issuedRow(late, late));
    await other.query(INSERT, issuedRow(early, late));
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

/** Opens a transaction on `c` that has a transaction id, and returns it. */
async function openWithId(c: pg.Client): Promise<bigint> {
  await c.query('BEGIN');
  const { rows } = await c.query<{ id: string }>('SELECT pg_current_xact_id()::text AS id');
  return BigInt(rows[0]!.id);
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
    await here.query(INSERT, issuedRow(user, user));
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
  const horizon = async (c: pg.Client) => BigInt((await c.query<{ h: string }>(`SELECT ${HORIZON}::text AS h`)).rows[0]!.h);
  try {
    await Promise.all([plain.connect(), away.connect(), here.connect()]);
    // Each time, a transaction that began later has ended, so the horizon could pass the open one.
    const other = await openWithId(away);
    await admin.query('SELECT pg_current_xact_id()');
    // Another test file's transaction that ends between the snapshot and the read of
    // pg_stat_activity cannot be placed and bounds that one answer: ask again.
    const passes = async (c: pg.Client) => (await horizon(c)) > other;
    await waitFor("the horizon past the other database's transaction, as superuser", () => passes(admin), 5000, 20);
    await waitFor("the horizon past the other database's transaction, as a plain role", () => passes(plain), 5000, 20);
    await away.query('ROLLBACK');

    const own = await openWithId(here);
    await admin.query('SELECT pg_current_xact_id()');
    expect(await horizon(admin)).toBeLessThanOrEqual(own);
    expect(await horizon(plain)).toBeLessThanOrEqual(own);
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
