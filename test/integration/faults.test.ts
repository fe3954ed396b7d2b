// Outages as an operator sees them under `npm start` (apps/start.ts, the real supervisor and every
// castlog process): Postgres restarted under the system, the relay's lock session cut, a process
// killed with SIGKILL. Postgres here is a private server (restarting the machine's one would break
// every other test); Kafka is the shared one, under a topic prefix of this file's own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog } from '../../infra/kafka/index.ts';
import { LOCKS, lockText } from '../../infra/locks.ts';
import { createLogger } from '../../infra/logger.ts';
import { PrivatePostgres } from '../support/private-postgres.ts';
import { SupervisedStack } from '../support/supervised.ts';
import { testName } from '../support/test-data.ts';
import { USER_TOKEN_SECRET, freePort, metricValue, readTopic, readyz, waitFor } from '../support/system.ts';

const BROKERS = process.env.KAFKA_BROKERS ?? '127.0.0.1:19092';
// Every process npm start runs (and dev-mail): the outage below must find each of them running.
const PROCESSES = ['api', 'relay', 'projector', 'fanout', 'worker', 'matcher', 'notifier'] as const;
type Name = (typeof PROCESSES)[number];

let postgres: PrivatePostgres;
let stack: SupervisedStack;
let log: EventLog;
let blobDir: string;
let databaseUrl: string;
let env: NodeJS.ProcessEnv;
const port = {} as Record<Name, number>;

const api = (path: string) => `http://127.0.0.1:${port.api}${path}`;

/** One stream-limit decision: issue a user id. The answer's id is the key of its event on Kafka. */
async function decide(): Promise<{ status: number; userId?: string }> {
  try {
    const r = await fetch(api('/users/newId'), { signal: AbortSignal.timeout(10_000) });
    const body = (await r.json()) as { userId?: string };
    return { status: r.status, userId: body.userId };
  } catch {
    return { status: 0 };
  }
}

/** Decides over and over until stopped; keeps the ids answered 200 and counts the rest. */
function decideContinuously() {
  const accepted: string[] = [];
  const refused: number[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const r = await decide();
      if (r.status === 200 && r.userId) accepted.push(r.userId);
      else refused.push(r.status);
      await new Promise((res) => setTimeout(res, 20));
    }
  })();
  return { accepted, refused, stop: async () => ((running = false), await done) };
}

async function allReady(timeoutMs = 60_000): Promise<void> {
  for (const name of PROCESSES) await waitFor(`${name} /readyz 200`, async () => (await readyz(port[name])) === 200, timeoutMs, 200);
}

/** Waits until every user id answered 200 is the key of an event on the streams topic. */
async function expectOnKafka(userIds: string[]): Promise<void> {
  const reader = await readTopic(log, 'streams');
  try {
    await waitFor(
      `${userIds.length} decisions on Kafka`,
      () => {
        const keys = new Set(reader.records.map((r) => r.key));
        return userIds.every((u) => keys.has(u));
      },
      60_000,
      200,
    );
  } finally {
    await reader.stop();
  }
}

/** No process the supervisor runs has ended; if one has, what the processes said last tells why. */
function expectNoExits(): void {
  const ended = stack.said.filter((l) => / (exited with code|was killed by) /.test(l));
  const lastWords = stack.output.filter((l) => !l.startsWith('{"level":30')).slice(-60);
  expect(ended, lastWords.join('\n')).toEqual([]);
}

const relayActive = async (p = port.relay) => (await metricValue(p, 'castlog_relay_active').catch(() => undefined)) === 1;

beforeAll(async () => {
  postgres = await PrivatePostgres.start();
  databaseUrl = postgres.url('castlog_faults');
  blobDir = mkdtempSync(join(tmpdir(), 'castlog-faults-blobs-'));
  for (const name of PROCESSES) port[name] = await freePort();
  const prefix = `${testName('faults')}.`;
  env = {
    KAFKA_BROKERS: BROKERS,
    DATABASE_URL: databaseUrl,
    TOPIC_PREFIX: prefix,
    API_PORT: String(port.api),
    RELAY_PORT: String(port.relay),
    PROJECTOR_PORT: String(port.projector),
    FANOUT_PORT: String(port.fanout),
    WORKER_PORT: String(port.worker),
    // The local SMTP server npm start runs too, on a port of its own here.
    NOTIFIER_PORT: String(port.notifier),
    MATCHER_PORT: String(port.matcher),
    DEV_MAIL_PORT: String(await freePort()),
    DEV_MAIL_DIR: join(blobDir, 'mail'),
    SIGNING_SECRET: 'faults-test-signing-secret-of-at-least-32-bytes',
    BLOB_DIR: blobDir,
    ADMIN_TOKEN: 'test-admin-token',
    USER_TOKEN_SECRET,
    LOG_LEVEL: 'warn',
  };
  stack = SupervisedStack.start(env);
  await allReady(120_000);
  await waitFor('the relay to hold its lock', () => relayActive(), 30_000, 200);
  log = new EventLog(BROKERS.split(','), prefix, createLogger('test', 'silent'));
});

afterAll(async () => {
  if (stack) {
    // Ctrl-C's path: everything the supervisor started ends with it.
    const stopping = stack.stop();
    const code = await Promise.race([stopping, new Promise((r) => setTimeout(() => r('timeout'), 30_000))]);
    if (code === 'timeout') stack.killAll();
  }
  await log?.close();
  await postgres?.destroy();
  if (blobDir) rmSync(blobDir, { recursive: true, force: true });
});

describe('npm start when Postgres restarts', () => {
  it('the relay takes its lock again by itself, every decision answered 200 reaches Kafka, no process stops', async () => {
    const relayStartedAt = await metricValue(port.relay, 'process_start_time_seconds');
    const load = decideContinuously();
    try {
      await waitFor('decisions before the outage', () => load.accepted.length >= 5, 30_000);
      await postgres.stopImmediately();
      // While Postgres is down the api says so (503), and never a 200 it could not keep.
      await waitFor('a decision refused during the outage', () => load.refused.some((s) => s === 503), 15_000, 50);
      await waitFor('/readyz 503 on the api', async () => (await readyz(port.api)) === 503, 15_000, 50);
      await postgres.startAgain();
      const before = load.accepted.length;
      await waitFor('decisions answered again after the restart', () => load.accepted.length >= before + 20, 60_000, 100);
    } finally {
      await load.stop();
    }
    await expectOnKafka(load.accepted);
    await waitFor('the relay active again', () => relayActive(), 30_000, 200);
    // The same relay process: it reconnected, it was not restarted.
    expect(await metricValue(port.relay, 'process_start_time_seconds')).toBe(relayStartedAt);
    await allReady();
    expectNoExits();
    expect(stack.running).toBe(true);
  }, 180_000);
});

describe('the relay lock session cut', () => {
  it('a standby or the same copy takes the lock again; one copy publishes; nothing is missed', async () => {
    // A second relay, as an operator would run one: a standby while the first holds the lock.
    const standbyPort = await freePort();
    const standby = SupervisedStack.startProcess('relay', { ...env, RELAY_PORT: String(standbyPort) });
    try {
      await waitFor('the standby up', async () => (await readyz(standbyPort)) === 200, 60_000, 200);
      expect(await metricValue(standbyPort, 'castlog_relay_active')).toBe(0);
      const load = decideContinuously();
      try {
        await waitFor('decisions before the cut', () => load.accepted.length >= 5, 30_000);
        const admin = new pg.Client({ connectionString: databaseUrl });
        await admin.connect();
        try {
          // Ends the session that holds the relay's advisory lock, as a failover or a DBA would. (A
          // bigint key is held as two halves: classid the high 32 bits, objid the low.)
          const { rowCount } = await admin.query(
            `WITH k AS (SELECT hashtextextended($1, 0) AS key)
             SELECT pg_terminate_backend(pid) FROM pg_locks, k
             WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND classid = ((key >> 32) & 4294967295)::oid AND objid = (key & 4294967295)::oid`,
            [lockText(LOCKS.relay)],
          );
          expect(rowCount).toBe(1);
        } finally {
          await admin.end();
        }
        const before = load.accepted.length;
        await waitFor('decisions after the cut', () => load.accepted.length >= before + 20, 60_000, 100);
        const active = async () =>
          ((await metricValue(port.relay, 'castlog_relay_active')) ?? 0) + ((await metricValue(standbyPort, 'castlog_relay_active')) ?? 0);
        await waitFor('exactly one relay active', async () => (await active()) === 1, 30_000, 200);
      } finally {
        await load.stop();
      }
      await expectOnKafka(load.accepted);
      expect(standby.exitCode).toBe(null);
      expectNoExits();
    } finally {
      await SupervisedStack.stopProcess(standby);
    }
  }, 180_000);
});

describe('npm start when a process is killed', () => {
  it('starts a process killed with SIGKILL again, and the system keeps working', async () => {
    const killed: Name[] = ['api', 'relay'];
    const pids = Object.fromEntries(killed.map((n) => [n, stack.pidOf(n)!]));
    for (const name of killed) process.kill(pids[name]!, 'SIGKILL');
    for (const name of killed)
      await stack.waitForLine(
        `the supervisor to report ${name}`,
        new RegExp(`^castlog: ${name} was killed by SIGKILL after .*; next attempt in \\d+\\.\\d s$`),
      );
    await waitFor('both started again', () => killed.every((n) => stack.pidOf(n) !== pids[n]), 30_000, 100);
    await allReady();
    await waitFor('the new relay to hold the lock', () => relayActive(), 30_000, 200);
    const after: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await decide();
      expect(r.status).toBe(200);
      after.push(r.userId!);
    }
    await expectOnKafka(after);
    expect(stack.running).toBe(true);
  }, 120_000);
});

describe('npm start stopped', () => {
  // Last in this file: it ends the stack the tests above share.
  it('SIGTERM (as Ctrl-C) ends every process it started, and the supervisor exits cleanly', async () => {
    const pids = PROCESSES.map((n) => stack.pidOf(n)!);
    expect(pids.every((pid) => alive(pid))).toBe(true);
    expect(await stack.stop()).toBe(0);
    expect(pids.filter((pid) => alive(pid))).toEqual([]);
  }, 60_000);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
