// Every setting comes from the environment; the README lists them with these defaults.
export interface Config {
  kafkaBrokers: string[];
  databaseUrl: string;
  apiPort: number;
  fanoutPort: number;
  adminToken: string | undefined;
  /** Prefix for every topic name, so several deployments (or test runs) can share a cluster. */
  topicPrefix: string;
  /** Caption messages per partition the fanout keeps in memory for resuming clients. */
  fanoutHistoryPerPartition: number;
  /** Bytes a WebSocket may have queued before it is closed as a slow consumer. */
  fanoutMaxBackpressure: number;
  logLevel: string;
  /** Streams a viewer may watch at once unless an admin set their own limit. */
  streamLimit: number;
  /** How long an activation counts without a heartbeat. */
  streamLeaseTtlMs: number;
  /** The WebSocket URL browsers should use, when it is not this host at FANOUT_PORT. */
  publicLiveUrl: string | undefined;
}

function int(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const num = (name: string, fallback: number) => int(name, fallback, env);
  return {
    kafkaBrokers: (env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(',').map((s) => s.trim()).filter(Boolean),
    databaseUrl: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/castlog',
    apiPort: num('API_PORT', 8080),
    fanoutPort: num('FANOUT_PORT', 8081),
    adminToken: env.ADMIN_TOKEN || undefined,
    topicPrefix: env.TOPIC_PREFIX ?? '',
    fanoutHistoryPerPartition: num('FANOUT_HISTORY_PER_PARTITION', 50_000),
    fanoutMaxBackpressure: num('FANOUT_MAX_BACKPRESSURE', 1024 * 1024),
    logLevel: env.LOG_LEVEL ?? 'info',
    publicLiveUrl: env.PUBLIC_LIVE_URL || undefined,
    streamLimit: num('STREAM_LIMIT', 3),
    streamLeaseTtlMs: num('STREAM_LEASE_TTL_MS', 60_000),
  };
}
