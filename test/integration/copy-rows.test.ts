// The caption projector writes fragments with COPY in Postgres' text format (infra/copy.ts), so a
// station's text with a backslash, tab, newline or return must be escaped exactly, or a caption
// is stored changed, or cut into columns. Generated rows go in through copyRows and come back out
// of the real Postgres unchanged.
import fc from 'fast-check';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { copyRows } from '../../infra/copy.ts';
import { testDatabase } from '../support/system.ts';

let db: Kysely<any>;

beforeAll(async () => {
  db = await testDatabase<any>('copy');
  await sql`CREATE TABLE copied (id int PRIMARY KEY, text text, n bigint, label text)`.execute(db);
});
afterAll(() => db?.destroy());

// Text as a station may send it, as the log holds it: any character but NUL (refused at ingest:
// Postgres text cannot hold it), control characters too, weighted towards those COPY's text format
// gives a meaning to.
const text = fc.string({
  unit: fc.oneof(
    fc.constantFrom('\\', '\t', '\n', '\r', '\\N', '\\.', 'N', '.', ' ', 'é', '字', '🙂'),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
    fc.integer({ min: 1, max: 0x1f }).map((c) => String.fromCharCode(c)),
  ),
  maxLength: 40,
});

it('gives back every generated row as it went in, in one COPY per batch inside a transaction', async () => {
  let next = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.option(text), fc.option(fc.maxSafeNat()), fc.option(text)), { minLength: 1, maxLength: 30 }),
      async (batch) => {
        const rows = batch.map(([t, n, label]) => [next++, t, n, label]);
        const count = await db.transaction().execute((trx) => copyRows(trx, 'copied', ['id', 'text', 'n', 'label'], rows));
        expect(count).toBe(rows.length);
        const back = await sql<{ id: number; text: string | null; n: string | null; label: string | null }>`
          SELECT id, text, n, label FROM copied WHERE id >= ${rows[0]![0]} ORDER BY id`.execute(db);
        expect(back.rows.map((r) => [r.id, r.text, r.n === null ? null : Number(r.n), r.label])).toEqual(rows);
      },
    ),
    { numRuns: 200, seed: 11 },
  );
});

it('writes nothing when the transaction it is in rolls back', async () => {
  const before = await sql<{ n: string }>`SELECT count(*) AS n FROM copied`.execute(db);
  await expect(
    db.transaction().execute(async (trx) => {
      await copyRows(trx, 'copied', ['id', 'text'], [[-1, 'rolled back']]);
      throw new Error('the positions could not be written');
    }),
  ).rejects.toThrow('the positions could not be written');
  const after = await sql<{ n: string }>`SELECT count(*) AS n FROM copied`.execute(db);
  expect(after.rows[0]!.n).toBe(before.rows[0]!.n);
});
