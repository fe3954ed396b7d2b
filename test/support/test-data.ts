// Names for what a test makes on the shared stack (a database, a topic prefix), and their removal
// once the whole run is over. `npm test` gives its run an id (CASTLOG_TEST_RUN); every name made
// in that run carries it, so the run drops exactly its own databases and topics afterwards, never
// another run's on the same stack, and never while any test file is still running.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { EventLog } from '../../infra/kafka/index.ts';
import { createLogger } from '../../infra/logger.ts';

/** The tag every name made by this run begins with: `t_<run>_`, or `t_` outside `npm test`. */
export function runTag(run = process.env.CASTLOG_TEST_RUN): string {
  return run ? `t_${run}_` : 't_';
}

/** A fresh name for a test's database or topic prefix (`t_<run>_<hex>`): letters, digits, '_'. */
export function testName(label = ''): string {
  return `${runTag()}${label ? `${label}_` : ''}${randomBytes(5).toString('hex')}`;
}

/** Drops every database and topic this run made (best effort: what is left is harmless). */
export function dropRunData(run: string, databaseUrl: string, kafkaBrokers: string): Promise<{ databases: number; topics: number }> {
  return dropNamed(runTag(run), databaseUrl, kafkaBrokers);
}

/** Drops the databases (on the server of `databaseUrl`) and topics whose names begin with `tag`:
 *  a run's (`t_<run>_`), or one System's (its name). Says how many of each. */
export async function dropNamed(tag: string, databaseUrl: string, kafkaBrokers: string): Promise<{ databases: number; topics: number }> {
  const server = new URL(databaseUrl);
  server.pathname = '/postgres';
  const client = new pg.Client({ connectionString: server.toString() });
  let databases = 0;
  try {
    await client.connect();
    const { rows } = await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [tag]);
    for (const { datname } of rows) {
      await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      databases++;
    }
  } finally {
    await client.end().catch(() => undefined);
  }
  const log = new EventLog(kafkaBrokers.split(','), tag, createLogger('test-data', 'silent'));
  try {
    return { databases, topics: await log.deleteTopics(60_000) };
  } finally {
    await log.close();
  }
}
