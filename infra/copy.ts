// COPY … FROM STDIN through kysely: the bulk path Postgres is built for, inside whatever transaction
// the caller holds. `copyRows` hands the rows to the statement as its one parameter; the pool's
// client (CopyClient, infra/db.ts) recognises that parameter and streams it with pg-copy-streams,
// so a projection's COPY commits with its positions like any other statement.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sql, type Kysely, type Transaction } from 'kysely';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/** The rows of one COPY, already in Postgres' text format. */
class CopyData {
  constructor(readonly text: string) {}
}

type CopyValue = string | number | null | undefined;

/** A value in COPY's text format: NULL as \N; backslash, tab, newline and return escaped. */
function field(v: CopyValue): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'number') return String(v);
  return /[\\\t\n\r]/.test(v) ? v.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c]!) : v;
}
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** COPY `rows` (values in `columns` order) into `table` in the caller's transaction; resolves with the row count. */
export async function copyRows(
  db: Kysely<any> | Transaction<any>,
  table: string,
  columns: readonly string[],
  rows: CopyValue[][],
): Promise<number> {
  if (!rows.length) return 0;
  // Appended field by field: no array and joined string per row, one flattening at the end.
  let text = '';
  for (const row of rows) {
    text += field(row[0]);
    for (let i = 1; i < row.length; i++) text += '\t' + field(row[i]);
    text += '\n';
  }
  const cols = sql.join(columns.map((c) => sql.id(c)));
  const r = await sql`COPY ${sql.id(table)} (${cols}) FROM STDIN ${new CopyData(text)}`.execute(db);
  return Number(r.numAffectedRows ?? rows.length);
}

const COPY_STATEMENT = /^(COPY [\s\S]+ FROM STDIN) \$1$/;

/** A pg client that runs a COPY statement built by copyRows as COPY FROM STDIN; any other query as pg does. */
export class CopyClient extends pg.Client {
  // pg's query() is overloaded many ways; only the (text, [CopyData]) form is taken over here.
  override query(...args: any[]): any {
    const [text, values] = args as [unknown, unknown];
    const data = Array.isArray(values) && values.length === 1 && values[0] instanceof CopyData ? values[0] : undefined;
    const statement = data && typeof text === 'string' ? COPY_STATEMENT.exec(text)?.[1] : undefined;
    if (!data || !statement) return (super.query as (...a: unknown[]) => unknown)(...args);
    const stream = super.query(copyFrom(statement));
    // Reported as an INSERT so kysely counts the rows (numAffectedRows).
    return pipeline(Readable.from([data.text]), stream).then(() => ({ command: 'INSERT', rowCount: stream.rowCount, rows: [] }));
  }
}
