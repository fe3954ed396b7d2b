// Every setting comes from the environment; the README lists them with these defaults.
import { UserTokens } from './user-tokens.ts';

/**
 * Socket writes a fanout's loop turn may start before its remaining write slices wait for the next
 * (apps/fanout/slices.ts): about 10 ms of writes on a 2-core box, ~20 µs each on loopback. Under it
 * every slice goes in the same turn, so where the rounds are short slices cost nothing.
 */
export const FANOUT_WRITES_PER_TURN = 500;

export interface Config {
  kafkaBrokers: string[];
  /** How many brokers the operator says the cluster has (unset: as many as answer). New topics are
   *  made for that size, so a first start while a broker is away waits for it instead of making
   *  topics with fewer copies than the cluster can hold. */
  kafkaClusterSize: number | undefined;
  databaseUrl: string;
  apiPort: number;
  fanoutPort: number;
  /** /healthz, /readyz and /metrics of the processes without an API of their own. */
  projectorPort: number;
  /** The projections this projector runs (by name); empty: every one. Lets a heavy one run in a
   *  process (or on a machine) of its own, beside the caption history viewers wait for. */
  projections: string[];
  relayPort: number;
  workerPort: number;
  matcherPort: number;
  adminToken: string | undefined;
  /** Prefix for every topic name, so several deployments (or test runs) can share a cluster. */
  topicPrefix: string;
  /** Caption messages per partition the fanout keeps in memory for resuming clients. */
  fanoutHistoryPerPartition: number;
  /** Bytes a WebSocket may have queued before it is closed as a slow consumer. */
  fanoutMaxBackpressure: number;
  /** Slices the fanout writes its sockets in over several loop turns, with fetches between (16 by default; 1: all at once). */
  fanoutWriteSlices: number;
  /** Socket writes a loop turn starts before the rest of the slices wait for the next (FANOUT_WRITES_PER_TURN). */
  fanoutWritesPerTurn: number;
  logLevel: string;
  /** Niceness the background processes (projector, relay, worker) give themselves (0, the default: none). */
  backgroundNice: number;
  /** Streams a viewer may watch at once unless an admin set their own limit. */
  streamLimit: number;
  /** How long an activation counts without a heartbeat. */
  streamLeaseTtlMs: number;
  /** The WebSocket URL browsers should use, when it is not this host at FANOUT_PORT. */
  publicLiveUrl: string | undefined;
  /** Origins of other sites' pages that may call the API (CORS) and open a live WebSocket ("*":
   *  any). The API's own pages need no entry: empty allows only them. Requests without an Origin
   *  are not browsers'. */
  allowedOrigins: string[];
  /** The content-addressed blob store (uploads, intermediates, encode outputs). */
  blobDir: string;
  /** Largest upload accepted (raw .yuv's limit; other files are also held to uploadMaxSeconds). */
  uploadMaxBytes: number;
  /** Longest video (by ffprobe) accepted for files that are not raw .yuv. */
  uploadMaxSeconds: number;
  /** How long an unfinished upload is kept before it expires and its bytes are removed. */
  uploadExpiryMs: number;
  /** A worker that has written nothing to a job for this long is presumed dead; another takes over. */
  workerLeaseMs: number;
  /** Jobs one worker process runs at once. */
  workerConcurrency: number;
  /** Shortest gap between two EncodeProgressed events of a job. */
  encodeProgressIntervalMs: number;
  /** Signs and checks user tokens (JWT, HS256); unset: only x-userid from the trusted proxy names users. */
  userTokenSecret: string | undefined;
  /** How long a user token issued here is valid. */
  userTokenTtlSeconds: number;
  /** Budget of one statement of an expensive read (search, export, analytics, history), enforced by Postgres. */
  readTimeoutMs: number;
  /** Expensive reads one api process runs at once, on a pool of their own. */
  readConcurrency: number;
  /** An NDJSON ingest stream that sends nothing for this long is ended, with a last line saying why. */
  ingestIdleTimeoutMs: number;
  /** NDJSON ingest streams one station may hold open at once on one api process. */
  ingestMaxStreamsPerStation: number;
  /** A request body (other than ingest and upload) that sends nothing for this long is answered 408. */
  bodyIdleTimeoutMs: number;
  /** An upload PATCH body that sends nothing for this long is ended; the bytes received are kept. */
  uploadIdleTimeoutMs: number;
  /** Derives webhook signing secrets and unsubscribe links (≥ 32 bytes; every process shares it). */
  signingSecret: string | undefined;
  /** Where people reach the API (links in e-mails); default http://localhost:API_PORT. */
  publicApiUrl: string;
  /** Alerts one user may have. */
  alertMaxPerUser: number;
  /** At most one e-mail per alert per this; later matches wait and go out together (a digest). */
  alertEmailIntervalMs: number;
  /** SMTP server for alert e-mails (smtp://user:pass@host:port); unset: e-mails are not sent. */
  smtpUrl: string | undefined;
  /** The From of alert e-mails. */
  mailFrom: string;
  /** Webhook destinations allowed although private, loopback or link-local (host names or IPs). */
  webhookAllowedHosts: string[];
  /** The notifier's /healthz, /readyz and /metrics. */
  notifierPort: number;
  /** Webhooks one notifier process sends at once. */
  notifierConcurrency: number;
  /** One webhook attempt's bound, connecting to the last byte read. */
  webhookTimeoutMs: number;
  /** Pause after a delivery's first failed attempt; it doubles with each failure, up to deliveryRetryMaxMs. */
  deliveryRetryBaseMs: number;
  deliveryRetryMaxMs: number;
  /** How long a delivery is tried again after it was created (or redelivered) before it is given up. */
  deliveryRetryWindowMs: number;
  /** Development only: where the local SMTP server keeps what it receives, shown by the api at /mail
   *  (`npm start` sets it when SMTP_URL is not set, and points SMTP_URL at that server). */
  devMailDir: string | undefined;
  /** Development only: the local SMTP server's port (on 127.0.0.1). */
  devMailPort: number;
}

/** An integer setting; out of its range it is refused at start, not bent into it silently. */
function int(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    const range =
      max === Number.MAX_SAFE_INTEGER
        ? min === 0
          ? 'a non-negative integer'
          : `an integer of at least ${min}`
        : `an integer from ${min} to ${max}`;
    throw new Error(`${name} must be ${range}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

/** Comma-separated origins, each "scheme://host[:port]" or "*", written as browsers send them. */
function origins(name: string, env: NodeJS.ProcessEnv): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((o) => {
      if (o === '*') return o;
      let u: URL | undefined;
      try {
        u = new URL(o);
      } catch {
        u = undefined;
      }
      const bare = u && u.pathname === '/' && !u.search && !u.hash && !u.username && !u.password;
      if (!u || !bare || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
        throw new Error(`${name} must be comma-separated origins like https://castlog.example:8443 (or *), got ${JSON.stringify(o)}`);
      }
      return u.origin;
    });
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const num = (name: string, fallback: number, min?: number, max?: number) => int(name, fallback, env, min, max);
  return {
    kafkaBrokers: (env.KAFKA_BROKERS ?? '127.0.0.1:19092')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    kafkaClusterSize: env.KAFKA_CLUSTER_SIZE ? num('KAFKA_CLUSTER_SIZE', 1, 1, 1000) : undefined,
    databaseUrl: env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/castlog',
    apiPort: num('API_PORT', 8080),
    fanoutPort: num('FANOUT_PORT', 8081),
    projectorPort: num('PROJECTOR_PORT', 8082),
    projections: (env.PROJECTIONS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    relayPort: num('RELAY_PORT', 8083),
    workerPort: num('WORKER_PORT', 8084),
    matcherPort: num('MATCHER_PORT', 8085),
    adminToken: env.ADMIN_TOKEN || undefined,
    topicPrefix: env.TOPIC_PREFIX ?? '',
    fanoutHistoryPerPartition: num('FANOUT_HISTORY_PER_PARTITION', 50_000),
    fanoutMaxBackpressure: num('FANOUT_MAX_BACKPRESSURE', 1024 * 1024),
    fanoutWriteSlices: num('FANOUT_WRITE_SLICES', 16, 1, 1024),
    fanoutWritesPerTurn: num('FANOUT_WRITES_PER_TURN', FANOUT_WRITES_PER_TURN, 0, 1_000_000),
    logLevel: env.LOG_LEVEL ?? 'info',
    backgroundNice: num('BACKGROUND_NICE', 0, 0, 19),
    publicLiveUrl: env.PUBLIC_LIVE_URL || undefined,
    allowedOrigins: origins('ALLOWED_ORIGINS', env),
    streamLimit: num('STREAM_LIMIT', 3),
    streamLeaseTtlMs: num('STREAM_LEASE_TTL_MS', 60_000),
    blobDir: env.BLOB_DIR || '.castlog/blobs',
    uploadMaxBytes: num('UPLOAD_MAX_BYTES', 50 * 1024 ** 3),
    uploadMaxSeconds: num('UPLOAD_MAX_SECONDS', 30 * 60),
    uploadExpiryMs: num('UPLOAD_EXPIRY_MS', 24 * 3600_000),
    workerLeaseMs: num('WORKER_LEASE_MS', 15_000),
    workerConcurrency: num('WORKER_CONCURRENCY', 1),
    encodeProgressIntervalMs: num('ENCODE_PROGRESS_INTERVAL_MS', 500),
    userTokenSecret: env.USER_TOKEN_SECRET || undefined,
    userTokenTtlSeconds: num('USER_TOKEN_TTL_SECONDS', 3600),
    readTimeoutMs: num('READ_TIMEOUT_MS', 2000),
    readConcurrency: num('READ_CONCURRENCY', 4, 1),
    ingestIdleTimeoutMs: num('INGEST_IDLE_TIMEOUT_MS', 120_000),
    ingestMaxStreamsPerStation: num('INGEST_MAX_STREAMS_PER_STATION', 16, 1),
    bodyIdleTimeoutMs: num('BODY_IDLE_TIMEOUT_MS', 10_000),
    uploadIdleTimeoutMs: num('UPLOAD_IDLE_TIMEOUT_MS', 60_000),
    signingSecret: env.SIGNING_SECRET || undefined,
    publicApiUrl: (env.PUBLIC_API_URL || `http://localhost:${num('API_PORT', 8080)}`).replace(/\/+$/, ''),
    alertMaxPerUser: num('ALERT_MAX_PER_USER', 100, 1),
    alertEmailIntervalMs: num('ALERT_EMAIL_INTERVAL', 5 * 60_000),
    smtpUrl: env.SMTP_URL || undefined,
    mailFrom: env.MAIL_FROM || 'castlog alerts <alerts@castlog.localhost>',
    webhookAllowedHosts: (env.WEBHOOK_ALLOWED_HOSTS ?? '')
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
    notifierPort: num('NOTIFIER_PORT', 8086),
    notifierConcurrency: num('NOTIFIER_CONCURRENCY', 8, 1),
    webhookTimeoutMs: num('WEBHOOK_TIMEOUT_MS', 10_000, 1),
    deliveryRetryBaseMs: num('DELIVERY_RETRY_BASE_MS', 10_000, 1),
    deliveryRetryMaxMs: num('DELIVERY_RETRY_MAX_MS', 3600_000, 1),
    deliveryRetryWindowMs: num('DELIVERY_RETRY_WINDOW_MS', 24 * 3600_000),
    devMailDir: env.DEV_MAIL_DIR || undefined,
    devMailPort: num('DEV_MAIL_PORT', 2525),
  };
}

/** The user-token signer and checker, when USER_TOKEN_SECRET is set. */
export function userTokensOf(config: Config): UserTokens | undefined {
  return config.userTokenSecret ? new UserTokens(config.userTokenSecret, config.userTokenTtlSeconds) : undefined;
}
