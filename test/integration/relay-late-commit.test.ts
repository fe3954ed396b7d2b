// The relay publishes in commit order and never skips a transaction that commits late: an event
// whose transaction is still open when later ones commit holds those back, and once it commits it
// goes out first. (Anyone changing the relay's horizon must keep this test passing.)
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { newMeta } from '../../schemas/envelope.ts';
import { viewerStream } from '../../domain/streams/viewer.ts';
import { System, readTopic, waitFor } from '../support/system.ts';

let sys: System;
beforeAll(async () => {
  sys = await System.create();
  await sys.start('relay');
});
afterAll(() => sys?.stop());

/** The row the event store writes for a user id issued: version 1 of the user's stream. Both rows
 *  of the test share one Kafka key, so one partition: the order the relay published them in is the
 *  order a reader sees (across partitions there is none). */
function issuedRow(userId: string, key: string): unknown[] {
  const stream = viewerStream(userId);
  const meta = { ...newMeta('UserIdIssued', 'test'), stream, streamVersion: 1 };
  return [stream, 1, 'UserIdIssued', key, sys.log.codec.encode('UserIdIssued', { userId, at: Date.now() }), JSON.stringify(meta)];
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

    await open.query('COMMIT');
    await waitFor('both on the log', () => users().length >= 2, 15_000);
    const firsts = users().filter((u, i, all) => all.indexOf(u) === i);
    expect(firsts).toEqual([late, early]);
  } finally {
    await open.end().catch(() => undefined);
    await other.end().catch(() => undefined);
    await topic.stop();
  }
});
