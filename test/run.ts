// `npm test`: brings up the stack (local Kafka + Postgres unless KAFKA_BROKERS / DATABASE_URL are
// set; containers when a Docker engine answers), runs vitest against it, stops what it started.
import { spawn } from 'node:child_process';
import { launchStack } from '../infra/stack/launch.ts';

const stack = await launchStack(process.env, 'castlog_test');
const code = await new Promise<number>((resolve) => {
  const vitest = spawn(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, KAFKA_BROKERS: stack.kafkaBrokers, DATABASE_URL: stack.databaseUrl },
  });
  vitest.once('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  process.once('SIGINT', () => vitest.kill('SIGINT'));
});
await stack.stop();
process.exit(code);
