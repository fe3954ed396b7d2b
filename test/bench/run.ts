// `npm run bench`: brings up the stack (reusing the Kafka on 127.0.0.1:19092 and the local
// Postgres), runs each scenario against real castlog processes, prints a table and writes it to
// .castlog/bench-results.json.
//
// Knobs (full default / BENCH_QUICK=1 default):
//   BENCH_QUICK=1                 small and short, for development
//   BENCH_ONLY=ingest,e2e,fanout,projection,rebuild,activations,search,uploads,alerts,alertsLatency,connections,twoFanouts
//   BENCH_PROF=1                  api, fanout, projector and the fanout bench servers run under
//                                 node --cpu-prof; profiles land in .castlog/prof
//   ingest:     BENCH_INGEST_STATIONS (8/4), _WINDOW fragments in flight per station (500/200),
//               _SECONDS (8/3), _WARMUP (2/1), _RAW_BATCH (2000/1000), _ROUNDS (2/1)
//   e2e:        BENCH_E2E_RATE fragments/s (2000), _SECONDS (15/4), _WARMUP (3/2), _CHANNELS (100),
//               _SUBS_SMALL (1000/200), _SUBS_LARGE (10000/2000), _CLIENT_PROCS (2), _OPEN_CONCURRENCY (10),
//               _PHASES which of the phases to run (1,2,3: small, large at a tenth, large batched),
//               BENCH_E2E_CLIENT=ws (`ws` package viewers instead of the bench's minimal client)
//   fanout:     BENCH_FANOUT_CLIENTS (10000/2000), _CHANNELS (100), _SECONDS per run (4/2),
//               _ROUNDS (2/1), _WINDOW deliveries in flight (200000/100000), _SHAPES (1,4),
//               BENCH_FANOUT_CLIENT=ws (`ws` package clients instead of the raw counting ones)
//   projection: BENCH_PROJECTION_EVENTS (200000/30000), _APPEND_CHUNK (10000)
//   search:     BENCH_SEARCH_FRAGMENTS (1000000/100000), _QUERIES per kind of query (40/10)
//   alerts, alertsLatency: see test/bench/alerts.ts
//   connections: see test/bench/connections.ts; BENCH_CONN_SINGLE (19000/2000),
//               _SERVERS (6/2), _TOTAL (100000/4000), _SINGLE_PROCS (2), _CONCURRENCY (200), _CHANNELS (100),
//               _ADDRESSES source addresses per client process (8), BENCH_CONN_BARE=0 skips the bare uWS baseline
//   twoFanouts:  see test/bench/two-fanouts.ts; BENCH_TWO_SUBS (10000/2000),
//               _CAPTIONS per run (50000/5000), _ROUNDS (2/1), _WINDOW deliveries in flight (1000000/200000)
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchStack } from '../../infra/stack/launch.ts';
import { CORES, QUICK, ROOT, killEverythingStarted } from './common.ts';
import { e2eBench, type E2eResult } from './e2e-latency.ts';
import { fanoutBench, type FanoutResult } from './fanout.ts';
import { ingestBench, type IngestResult } from './ingest.ts';
import { projectionBench, type ProjectionResult } from './projection.ts';
import { rebuildBench, type RebuildResult } from './rebuild.ts';
import { activationsBench, type ActivationsResult } from './activations.ts';
import { alertsBench, alertsLatencyBench, type AlertsLatencyResult, type AlertsResult } from './alerts.ts';
import { searchBench, type SearchResult } from './search.ts';
import { uploadsBench, type UploadsResult } from './uploads.ts';
import { report } from './report.ts';
import { connectionsBench, type ConnectionsResult } from './connections.ts';
import { twoFanoutsBench, type TwoFanoutsResult } from './two-fanouts.ts';
import { NODE_FLAGS } from '../../apps/node-args.ts';

// This process hosts castlog code too (the ingest scenario's EventLog.append, beside raw kafkajs):
// it runs with the apps' node flags, as every process the bench forks does.
// Signals are passed on, so an interrupted bench still ends what it started.
if (!NODE_FLAGS.every((f) => process.execArgv.includes(f))) {
  const again = spawn(process.execPath, [...NODE_FLAGS, ...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => again.kill(signal));
  process.exit(await new Promise<number>((done) => again.once('exit', (code) => done(code ?? 1))));
}

// The machine's own services, as `npm test` uses them: the local Kafka (started here unless
// KAFKA_BROKERS points at one) and Postgres, never containers (they would measure Docker too).
process.env.DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/castlog_test';
process.env.CASTLOG_NO_DOCKER ??= '1';

// 10k WebSockets on each side: every process we start (they inherit our limit) must be allowed
// more than 10k descriptors. Raise the soft limit to the hard one when we can (prlimit on our pid).
const hard = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${hard}:${hard}`], { encoding: 'utf8' });
const nofile = spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim();
if (Number(nofile) < 12_000)
  console.error(`warning: the open-files limit is ${nofile}; 10k WebSockets in one process need more (raise ulimit -n)`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`bench: ${signal}, ending the processes it started`);
    killEverythingStarted();
    process.exit(130);
  });
}
// A crash must not leave an api, relay or projector running with no parent.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err) => {
    console.error(`bench: ${event}, ending the processes it started:`, err);
    killEverythingStarted();
    process.exit(1);
  });
}

const only = new Set(
  (process.env.BENCH_ONLY ?? 'ingest,e2e,fanout,projection,rebuild,activations,search,uploads,alerts,alertsLatency,connections,twoFanouts')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);
const started = Date.now();
const log = (s: string) => console.error(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${s}`);

const stack = await launchStack(process.env, 'castlog_test');
// Every scenario (and every process it starts) reads the brokers from here.
process.env.KAFKA_BROKERS = stack.kafkaBrokers;
log(
  `stack: kafka ${stack.kafkaBrokers}, postgres ${stack.databaseUrl}; ${CORES} cores; open files ${nofile}${QUICK ? '; QUICK mode' : ''}`,
);

export interface Results {
  at: string;
  quick: boolean;
  cores: number;
  loadavg: string;
  durationSeconds?: number;
  ingest?: IngestResult;
  e2e?: E2eResult;
  fanout?: FanoutResult;
  projection?: ProjectionResult;
  rebuild?: RebuildResult;
  activations?: ActivationsResult;
  search?: SearchResult;
  uploads?: UploadsResult;
  alerts?: AlertsResult;
  alertsLatency?: AlertsLatencyResult;
  connections?: ConnectionsResult;
  twoFanouts?: TwoFanoutsResult;
  errors: Record<string, string>;
}

const loadavg = () => spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.trim();
const results: Results = { at: new Date().toISOString(), quick: QUICK, cores: CORES, loadavg: loadavg(), errors: {} };

async function scenario<
  K extends
    | 'ingest'
    | 'e2e'
    | 'fanout'
    | 'projection'
    | 'rebuild'
    | 'activations'
    | 'search'
    | 'uploads'
    | 'alerts'
    | 'alertsLatency'
    | 'connections'
    | 'twoFanouts',
>(name: K, fn: () => Promise<NonNullable<Results[K]>>): Promise<void> {
  if (!only.has(name)) return;
  const t0 = Date.now();
  try {
    results[name] = (await fn()) as Results[K];
  } catch (e) {
    results.errors[name] = e instanceof Error ? (e.stack ?? e.message) : String(e);
    log(`${name} FAILED: ${results.errors[name]}`);
  }
  log(`${name} took ${((Date.now() - t0) / 1000).toFixed(1)}s`);
}

try {
  await scenario('ingest', () => ingestBench(log));
  await scenario('e2e', () => e2eBench(log));
  await scenario('fanout', () => fanoutBench(log));
  await scenario('projection', () => projectionBench(log));
  await scenario('rebuild', () => rebuildBench(log));
  await scenario('activations', () => activationsBench(log));
  await scenario('search', () => searchBench(log));
  await scenario('uploads', () => uploadsBench(log));
  await scenario('alerts', () => alertsBench(log));
  await scenario('alertsLatency', () => alertsLatencyBench(log));
  await scenario('connections', () => connectionsBench(log));
  await scenario('twoFanouts', () => twoFanoutsBench(log));
} finally {
  // Each scenario stops its own processes; this catches any a failure left behind.
  killEverythingStarted();
  await stack.stop();
}
results.durationSeconds = Math.round((Date.now() - started) / 1000);
results.loadavg += ` -> ${loadavg()}`;

const text = report(results);
console.log(text);
mkdirSync(join(ROOT, '.castlog'), { recursive: true });
writeFileSync(join(ROOT, '.castlog', 'bench-results.json'), JSON.stringify({ ...results, table: text.split('\n') }, null, 2));
log('wrote .castlog/bench-results.json');
process.exit(Object.keys(results.errors).length ? 1 : 0);
