// `npm test`: brings up the stack (local Kafka + Postgres unless KAFKA_BROKERS / DATABASE_URL are
// set; containers when a Docker engine answers), runs vitest against it, then drops the databases
// and topics the run made (KEEP_TEST_DATA=1 keeps them, to look at) and stops what it started.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { launchStack } from '../infra/stack/launch.ts';
import { dropRunData } from './support/test-data.ts';

const stack = await launchStack(process.env, 'castlog_test');
const run = randomBytes(4).toString('hex');
const code = await new Promise<number>((resolve) => {
  const vitest = spawn(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, KAFKA_BROKERS: stack.kafkaBrokers, DATABASE_URL: stack.databaseUrl, CASTLOG_TEST_RUN: run },
  });
  vitest.once('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  process.once('SIGINT', () => vitest.kill('SIGINT'));
});
// After every file has finished: deleting topics while other files run loads the one broker they share.
if (process.env.KEEP_TEST_DATA !== '1') {
  const t0 = Date.now();
  await dropRunData(run, stack.databaseUrl, stack.kafkaBrokers).then(
    ({ databases, topics }) => console.log(`dropped this run's ${databases} databases and ${topics} topics in ${Date.now() - t0} ms`),
    (err: Error) => console.warn(`left this run's test data (t_${run}_*): ${err.message}`),
  );
}
await stack.stop();
process.exit(code);
