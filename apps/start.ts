// `npm start`: the whole system on this machine. Starts the local Kafka + Postgres unless
// KAFKA_BROKERS / DATABASE_URL point elsewhere, then api, projector and fanout. Ctrl-C stops all.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { launchStack } from '../infra/stack/launch.ts';
import { loadConfig } from '../infra/config.ts';
import { EventLog } from '../infra/kafka.ts';
import { createLogger } from '../infra/logger.ts';

const APPS = ['api', 'relay', 'projector', 'fanout', 'worker'] as const;
const root = fileURLToPath(new URL('..', import.meta.url));

const stack = await launchStack();
// Every process must share one user-token secret; on this machine, one made up per run does.
const env = {
  ...process.env,
  KAFKA_BROKERS: stack.kafkaBrokers,
  DATABASE_URL: stack.databaseUrl,
  USER_TOKEN_SECRET: process.env.USER_TOKEN_SECRET || randomBytes(32).toString('base64url'),
};
const config = loadConfig(env);
// Topics first, so no app races another to create them.
const log = new EventLog(config.kafkaBrokers, config.topicPrefix, createLogger('start'));
await log.ensureTopics();
await log.close();

const children: ChildProcess[] = APPS.map((name) =>
  spawn(process.execPath, ['--import', 'tsx', `apps/${name}/main.ts`], { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] }),
);
let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => (c.once('exit', r), c.kill('SIGTERM'))) : null)));
    await stack.stop();
  }
  process.exit(code);
}
for (const c of children) c.once('exit', (code) => void (stopping || (console.error(`a castlog process exited (${code}); stopping`), stop(1))));
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

console.log(`
castlog is running
  page      http://localhost:${config.apiPort}/
  upload    http://localhost:${config.apiPort}/upload
  api       http://localhost:${config.apiPort}/v1/channels
  live      ws://localhost:${config.fanoutPort}/v1/live
  metrics   http://localhost:${config.apiPort}/metrics, http://localhost:${config.fanoutPort}/metrics
  kafka     ${stack.kafkaBrokers}
  postgres  ${stack.databaseUrl}
Create a station key with: npx castlog stations add <name>
Ctrl-C stops everything.
`);
