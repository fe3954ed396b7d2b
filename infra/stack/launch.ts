// Brings up what KAFKA_BROKERS / DATABASE_URL do not point at: containers when a Docker
// engine answers, else Apache Kafka's jars (CASTLOG_LOCAL_BROKERS nodes, one by default) and the
// machine's Postgres.
import { localBrokerCount, startLocalKafka } from './kafka-local.ts';
import { ensureDatabase, ensureLocalPostgres } from './postgres-local.ts';
import { dockerAnswers, startContainers } from './containers.ts';

export interface Stack {
  kafkaBrokers: string;
  databaseUrl: string;
  stop: () => Promise<void>;
}

export async function launchStack(env: NodeJS.ProcessEnv = process.env, database = 'castlog'): Promise<Stack> {
  if (env.KAFKA_BROKERS && env.DATABASE_URL) {
    await ensureDatabase(env.DATABASE_URL);
    return { kafkaBrokers: env.KAFKA_BROKERS, databaseUrl: env.DATABASE_URL, stop: async () => undefined };
  }
  if (dockerAnswers()) {
    const c = await startContainers();
    const databaseUrl = env.DATABASE_URL ?? c.databaseUrl.replace(/\/castlog$/, `/${database}`);
    await ensureDatabase(databaseUrl);
    return { kafkaBrokers: env.KAFKA_BROKERS ?? c.kafkaBrokers, databaseUrl, stop: c.stop };
  }
  const [kafka] = await Promise.all([
    env.KAFKA_BROKERS ? Promise.resolve(undefined) : startLocalKafka(19092, localBrokerCount(env)),
    env.DATABASE_URL ? Promise.resolve() : ensureLocalPostgres(),
  ]);
  const databaseUrl = env.DATABASE_URL ?? `postgres://postgres@127.0.0.1:5432/${database}`;
  await ensureDatabase(databaseUrl);
  return {
    kafkaBrokers: kafka?.brokers ?? env.KAFKA_BROKERS!,
    databaseUrl,
    stop: async () => await kafka?.stop(),
  };
}
