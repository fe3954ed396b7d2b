// `npm start`: the whole system on this machine. Starts the local Kafka + Postgres unless
// KAFKA_BROKERS / DATABASE_URL point elsewhere, then every castlog process under a supervisor
// that restarts one that dies (with backoff) while the others go on. Ctrl-C (or SIGTERM) stops
// all of them, and the Kafka started here. Without SMTP_URL, alert e-mails go to a local SMTP
// server (dev-mail) that keeps them for the api's /mail page.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchStack } from '../infra/stack/launch.ts';
import { loadConfig } from '../infra/config.ts';
import { createDb } from '../infra/db.ts';
import { EventLog } from '../infra/kafka/index.ts';
import { createLogger } from '../infra/logger.ts';
import type { Database } from '../projections/database.ts';
import { migrate } from '../projections/migrate.ts';
import { withMailSetup } from './dev-mail/setup.ts';
import { appArgs } from './node-args.ts';
import { builtFromAnotherLog } from './projection-admin.ts';
import { Supervisor } from './supervisor.ts';

const APPS = ['api', 'relay', 'projector', 'fanout', 'worker', 'matcher', 'notifier'] as const;
const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * The signing secret of this machine: made up once and kept, since the links in e-mails already
 * sent and the secrets webhook receivers were given must go on working after a restart.
 */
function signingSecret(file: string): string {
  try {
    const kept = readFileSync(file, 'utf8').trim();
    if (kept.length >= 32) return kept;
  } catch {
    // none yet
  }
  const secret = randomBytes(32).toString('base64url');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

/** The projection versions whose positions lie past the end of `log` (a local log deleted while the
 *  database was kept, say): started anyway, they would skip what the new log gets. */
async function readModelsFromAnotherLog(log: EventLog, databaseUrl: string): Promise<string[]> {
  const db = createDb<Database>(databaseUrl, 1);
  try {
    await migrate(db);
    return await builtFromAnotherLog(db, log);
  } finally {
    await db.destroy();
  }
}

const stack = await launchStack();
// Every process must share one user-token secret; on this machine, one made up per run does.
const base: NodeJS.ProcessEnv = {
  ...process.env,
  KAFKA_BROKERS: stack.kafkaBrokers,
  DATABASE_URL: stack.databaseUrl,
  USER_TOKEN_SECRET: process.env.USER_TOKEN_SECRET || randomBytes(32).toString('base64url'),
  SIGNING_SECRET: process.env.SIGNING_SECRET || signingSecret(join(root, '.castlog', 'signing-secret')),
};
// No SMTP server of one's own: a local one keeps the e-mails and the api shows them at /mail.
const { env, devMail } = withMailSetup(base, root, loadConfig(base).devMailPort);
const config = loadConfig(env);
// Topics first, so no app races another to create them.
const log = new EventLog(config.kafkaBrokers, config.topicPrefix, createLogger('start'), { clusterSize: config.kafkaClusterSize });
await log.ensureTopics();
const foreign = await readModelsFromAnotherLog(log, config.databaseUrl);
await log.close();
if (foreign.length) {
  const database = decodeURIComponent(new URL(config.databaseUrl).pathname.slice(1));
  console.error(`castlog: the database ${database} holds read models built from another log (${foreign.join(', ')}):
their positions lie past the end of the log at ${config.kafkaBrokers}, so what it gets next would be taken for applied.
Point KAFKA_BROKERS / TOPIC_PREFIX at the log it was built from, or start afresh with an empty database${
    process.env.DATABASE_URL ? '' : ` (here: dropdb -h 127.0.0.1 -U postgres ${database})`
  }. Nothing was started.`);
  await stack.stop();
  process.exit(1);
}

const supervisor = new Supervisor(
  [...APPS, ...(devMail ? ['dev-mail'] : [])].map((name) => ({
    name,
    command: process.execPath,
    args: appArgs(name),
  })),
  { cwd: root, env },
);
let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await supervisor.stop();
    await stack.stop();
  }
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
// The supervisor failing must not leave its processes running without it.
process.on('uncaughtException', (err) => (console.error('castlog: supervisor failed:', err), void stop(1)));
supervisor.start();

console.log(`
castlog is running
  page      http://localhost:${config.apiPort}/
  upload    http://localhost:${config.apiPort}/upload
  api       http://localhost:${config.apiPort}/v1/channels
  live      ws://localhost:${config.fanoutPort}/v1/live
  metrics   http://localhost:${config.apiPort}/metrics, http://localhost:${config.fanoutPort}/metrics
  e-mail    ${devMail ? `http://localhost:${config.apiPort}/mail (kept by a local SMTP server on ${env.SMTP_URL}; set SMTP_URL to send for real)` : 'through SMTP_URL'}
  kafka     ${stack.kafkaBrokers}
  postgres  ${stack.databaseUrl}
Create a station key with: npx castlog stations add <name>
A process that dies is started again; Ctrl-C stops everything.
`);
