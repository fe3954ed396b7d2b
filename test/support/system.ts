// Runs the real castlog processes against the real Kafka and Postgres for a test file. Each file
// gets its own topic prefix and database, so files can run side by side.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import type { Kysely } from 'kysely';
import { appArgs } from '../../apps/node-args.ts';
import { ensureDatabase } from '../../infra/stack/postgres-local.ts';
import { createDb } from '../../infra/db.ts';
import type { Db, Database } from '../../projections/database.ts';
import { EventLog, type LogRecord } from '../../infra/kafka/index.ts';
import type { TopicName } from '../../schemas/catalog.ts';
import { createLogger } from '../../infra/logger.ts';
import { addStation } from '../../infra/stations.ts';
import { migrate } from '../../projections/migrate.ts';
import { checkFrame, frameCheck, watchApi } from './contract.ts';
import { testName } from './test-data.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export type AppName = 'api' | 'projector' | 'fanout' | 'relay';
/** Every process a test can start; the encode worker has no fixed port. */
export type ProcessName = AppName | keyof typeof HEALTH_PORT;

/** Processes with no fixed port here: each one started gets a fresh health port in this variable
 *  (dev-mail's is its SMTP port). */
const HEALTH_PORT = { worker: 'WORKER_PORT', matcher: 'MATCHER_PORT', notifier: 'NOTIFIER_PORT', 'dev-mail': 'DEV_MAIL_PORT' } as const;

/** True once an SMTP server on the port greets (220). */
function smtpGreets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const done = (ok: boolean) => (socket.destroy(), resolve(ok));
    socket.setTimeout(1000, () => done(false));
    socket.once('data', (d) => done(d.toString().startsWith('220')));
    socket.once('error', () => done(false));
  });
}

/**
 * The ports this process hands to the processes it starts: a block of its own, below the kernel's
 * ephemeral range. A port the kernel picked and freed could be picked again, by another test file
 * running at once or by any outgoing connection, before the started process bound it: it then
 * exited, and another file's process on that port answered its readiness probe.
 */
const OWN_PORTS = (() => {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    // not Linux: the default range's start
  }
  const size = 1000;
  const slots = Math.max(1, Math.min(8, Math.floor((low - 10_000) / size)));
  // vitest numbers its concurrent workers from 1; a bench or script runs alone.
  const slot = (Number(process.env.VITEST_POOL_ID) || 0) % slots;
  return { first: low - (slots - slot) * size, size, next: randomInt(size) };
})();

/** A port nothing listens on, from this process's own block (see OWN_PORTS). */
export async function freePort(): Promise<number> {
  for (let i = 0; i < OWN_PORTS.size; i++) {
    const port = OWN_PORTS.first + (OWN_PORTS.next++ % OWN_PORTS.size);
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${OWN_PORTS.first}–${OWN_PORTS.first + OWN_PORTS.size - 1}`);
}

/** A free port with the next `n - 1` free too: a local Kafka node listens on p and p + 1, node i of a cluster on p + 2i, p + 2i + 1. */
export async function freePortRun(n: number): Promise<number> {
  for (;;) {
    const base = await freePort();
    let ok = base + n < 65536;
    for (let i = 1; ok && i < n; i++) ok = await canListen(base + i);
    if (ok) return base;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
  });
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}${processTails()}`);
}

/** Systems started and not yet stopped: a timeout names what their processes last said. */
const running = new Set<System>();

/** The last lines each running process wrote (they log warnings and errors only), so a timeout in CI says why. */
function processTails(): string {
  const tails: string[] = [];
  for (const sys of running)
    for (const [app, lines] of sys.output) {
      const tail = lines.join('').trimEnd().split('\n').slice(-4).join('\n').slice(-1200);
      if (tail) tails.push(`[${sys.name} ${app}${sys.procs.has(app) ? '' : ', stopped'}] ${tail}`);
    }
  return tails.length ? `\nprocess output:\n${tails.join('\n')}` : '';
}

/** Every process of a test system signs and checks user tokens with this. */
export const USER_TOKEN_SECRET = 'test-user-token-secret-of-at-least-32-bytes';
/** Every process of a test system derives webhook secrets and unsubscribe links from this. */
export const SIGNING_SECRET = 'test-signing-secret-of-at-least-32-bytes';

/** The tests' own connections wait longer to connect than castlog's processes (1 s, to find an
 *  outage fast): on a loaded machine, right after CREATE DATABASE, a first connection can take more
 *  (a fresh-clone run failed setting up a test that way), and the harness is not what is tested. */
const HARNESS_POOL = { connectTimeoutMs: 10_000 };

/** The URL of database `name` on the tests' Postgres server. */
function databaseUrl(name: string): string {
  const url = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/castlog_test');
  url.pathname = `/${name}`;
  return url.toString();
}

/** A database of its own for a test of Postgres alone (dropped with the run's data), on the harness's pool settings. */
export async function testDatabase<DB extends object = Database>(label: string): Promise<Kysely<DB>> {
  const url = databaseUrl(testName(label));
  await ensureDatabase(url);
  return createDb<DB>(url, 2, HARNESS_POOL);
}

export class System {
  readonly env: NodeJS.ProcessEnv;
  readonly procs = new Map<ProcessName, ChildProcess>();
  readonly output = new Map<ProcessName, string[]>();
  /** The port each started process serves /healthz, /readyz and /metrics on. */
  readonly ports = new Map<ProcessName, number>();
  /** Processes being ended by kill() or stop(), told apart from ones that end by themselves. */
  private readonly ending = new WeakSet<ChildProcess>();
  db!: Db;
  log!: EventLog;

  relayPort = 0;

  private constructor(
    readonly name: string,
    readonly apiPort: number,
    readonly fanoutPort: number,
    readonly projectorPort: number,
    extraEnv: NodeJS.ProcessEnv,
  ) {
    this.env = {
      ...process.env,
      DATABASE_URL: databaseUrl(name),
      TOPIC_PREFIX: `${name}.`,
      API_PORT: String(apiPort),
      FANOUT_PORT: String(fanoutPort),
      PROJECTOR_PORT: String(projectorPort),
      ADMIN_TOKEN: 'test-admin-token',
      USER_TOKEN_SECRET: USER_TOKEN_SECRET,
      SIGNING_SECRET: SIGNING_SECRET,
      LOG_LEVEL: 'warn',
      ...extraEnv,
    };
  }

  /** A new database and topic prefix. `opts.kafkaBrokers` points the processes and the test's own
   *  log at another Kafka (a private broker a test may kill); by default, the shared one. */
  static async create(extraEnv: NodeJS.ProcessEnv = {}, opts: { kafkaBrokers?: string } = {}): Promise<System> {
    const name = testName();
    const brokers = opts.kafkaBrokers ?? process.env.KAFKA_BROKERS ?? '127.0.0.1:19092';
    const sys = new System(name, await freePort(), await freePort(), await freePort(), {
      ...extraEnv,
      ...(opts.kafkaBrokers ? { KAFKA_BROKERS: brokers } : {}),
    });
    sys.relayPort = await freePort();
    sys.env.RELAY_PORT = String(sys.relayPort);
    await ensureDatabase(sys.env.DATABASE_URL!);
    sys.db = createDb<Database>(sys.env.DATABASE_URL!, 4, HARNESS_POOL);
    await migrate(sys.db);
    sys.log = new EventLog(brokers.split(','), sys.env.TOPIC_PREFIX!, createLogger('test', 'silent'));
    await sys.log.ensureTopics();
    running.add(sys);
    return sys;
  }

  /** Another set of processes on the same database and topics (a second API instance, say). */
  static async sharing(other: System): Promise<System> {
    const sys = new System(other.name, await freePort(), await freePort(), await freePort(), {});
    sys.relayPort = await freePort();
    Object.assign(sys.env, {
      DATABASE_URL: other.env.DATABASE_URL,
      TOPIC_PREFIX: other.env.TOPIC_PREFIX,
      STREAM_LIMIT: other.env.STREAM_LIMIT,
      USER_TOKEN_SECRET: other.env.USER_TOKEN_SECRET,
      RELAY_PORT: String(sys.relayPort),
    });
    sys.db = createDb<Database>(sys.env.DATABASE_URL!, 2, HARNESS_POOL);
    sys.log = new EventLog(
      (process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(','),
      sys.env.TOPIC_PREFIX!,
      createLogger('test', 'silent'),
    );
    running.add(sys);
    return sys;
  }

  get api(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  get live(): string {
    return `ws://127.0.0.1:${this.fanoutPort}/v1/live`;
  }

  /** The process, while it runs. */
  running(app: ProcessName): ChildProcess | undefined {
    const child = this.procs.get(app);
    return child && child.exitCode === null && child.signalCode === null ? child : undefined;
  }

  /** Everything the process wrote (it logs warnings and errors only), as text. */
  said(app: ProcessName): string {
    return (this.output.get(app) ?? []).join('');
  }

  async start(app: ProcessName, env: NodeJS.ProcessEnv = {}): Promise<void> {
    // Started again while running, the first would be left behind, out of reach of stop().
    if (this.running(app)) throw new Error(`${app} is already running`);
    // A fresh health port each time, so one can be started after another was killed.
    const portVar = app in HEALTH_PORT ? HEALTH_PORT[app as keyof typeof HEALTH_PORT] : undefined;
    if (portVar && !env[portVar]) env = { ...env, [portVar]: String(await freePort()) };
    const lines: string[] = [];
    this.output.set(app, lines);
    const child = spawn(process.execPath, appArgs(app), {
      cwd: ROOT,
      env: { ...this.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => lines.push(d.toString()));
    child.stderr!.on('data', (d: Buffer) => lines.push(d.toString()));
    this.procs.set(app, child);
    // A process that ends without kill() or stop() is a failure of its own: its output says so.
    // Said at once on the runner's stderr too, with the end of what it wrote: the test that fails
    // next may only see a refused connection.
    child.once('exit', (code, signal) => {
      if (this.ending.has(child)) return;
      const said = `[${app} ended by itself: ${signal ?? `exit code ${code}`}]`;
      lines.push(`\n${said}\n`);
      process.stderr.write(`${said} (pid ${child.pid}); its last output:\n${lines.join('').slice(-4000)}\n`);
    });
    if (app === 'api') watchApi(this.api);
    const fixed: Record<AppName, number> = {
      api: this.apiPort,
      fanout: this.fanoutPort,
      projector: this.projectorPort,
      relay: this.relayPort,
    };
    const port = portVar ? Number(env[portVar]) : fixed[app as AppName];
    this.ports.set(app, port);
    // A process that exits before it is ready fails the start at once, with what it said.
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code, signal) => reject(new Error(`${app} exited (${signal ?? code}) before it was ready: ${lines.join('')}`))),
    );
    exited.catch(() => undefined);
    await Promise.race([
      exited,
      waitFor(
        `${app} to be ready`,
        async () => {
          if (app === 'dev-mail') return smtpGreets(port);
          const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
          return r?.ok;
        },
        60_000,
        200,
      ),
    ]);
  }

  /** A command (node's arguments: a script, or --import tsx and one) run to its end with this
   *  system's environment, `env` on top: its exit code, stdout and stderr. */
  run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, args, { env: { ...this.env, ...env } });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('exit', (code) => resolve({ code: code ?? -1, out, err }));
    });
  }

  /** kill -9: no chance to flush or commit anything. */
  async kill(app: ProcessName, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.running(app);
    if (!child) return;
    this.ending.add(child);
    await new Promise((r) => (child.once('exit', r), child.kill(signal)));
    this.procs.delete(app);
  }

  async stationKey(name = `station-${randomBytes(3).toString('hex')}`): Promise<string> {
    return addStation(this.db, name);
  }

  /** POSTs JSON fragments; returns status and body. */
  async postJson(channel: string, key: string | undefined, body: unknown): Promise<{ status: number; body: any }> {
    const r = await fetch(`${this.api}/v1/channels/${channel}/captions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: r.status, body: await r.json() };
  }

  /** POSTs an NDJSON body (string or bytes) and returns the response lines. */
  async postNdjson(channel: string, key: string, body: string | Buffer): Promise<{ status: number; lines: any[] }> {
    const r = await fetch(`${this.api}/v1/channels/${channel}/captions`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${key}` },
      body: typeof body === 'string' ? body : new Uint8Array(body),
    });
    const text = await r.text();
    return {
      status: r.status,
      lines: text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
    };
  }

  async get(path: string): Promise<{ status: number; body: any }> {
    const r = await fetch(`${this.api}${path}`);
    return { status: r.status, body: await r.json() };
  }

  /** Rows in the read model, in log order. */
  async fragments(channel: string): Promise<{ seq: number; text: string; offset: number }[]> {
    return this.db
      .selectFrom('caption_fragments')
      .select(['seq', 'text', 'offset'])
      .where('channel', '=', channel)
      .orderBy('offset')
      .execute();
  }

  /** A stream's events as the event store holds them, in order, decoded. */
  /** How many decided events the event store holds. */
  async eventCount(): Promise<number> {
    const { n } = await this.db
      .selectFrom('events')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(n);
  }

  async storedEvents(stream: string): Promise<{ type: string; data: any }[]> {
    const rows = await this.db.selectFrom('events').select(['type', 'data']).where('stream', '=', stream).orderBy('version').execute();
    return rows.map((r) => ({ type: r.type, data: this.log.codec.decode(r.data).data }));
  }

  async captionsInLog(): Promise<number> {
    return (await this.log.offsets('captions')).reduce((n, o) => n + o.high - o.low, 0);
  }

  async stop(): Promise<void> {
    running.delete(this);
    await Promise.all([...this.procs.keys()].map((a) => this.kill(a, 'SIGTERM')));
    await this.log?.close();
    await this.db?.destroy();
  }
}

/** The value of a Prometheus metric on a process's /metrics page, summed over its series, or over
 *  those whose labels include `label` (`space="new"`). */
export async function metricValue(port: number, name: string, label?: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum: number | undefined;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) {
    if (label === undefined || (m[1] ?? '').split(',').includes(label)) sum = (sum ?? 0) + Number(m[2]);
  }
  return sum;
}

/** The HTTP status of a process's /readyz, or 0 when it does not answer. */
export async function readyz(port: number): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status ?? 0;
}

/** Reads a topic from its first offset, collecting every record until stop(): what reached Kafka. */
export async function readTopic(log: EventLog, topic: TopicName): Promise<{ records: LogRecord[]; stop: () => Promise<void> }> {
  const records: LogRecord[] = [];
  const consumer = await log.consume({
    groupId: EventLog.privateGroup(`read-${topic}`),
    topics: [topic],
    startAt: async () => 0,
    onBatch: async (b) => void records.push(...b.records),
  });
  return { records, stop: () => consumer.stop() };
}

/** A WebSocket client of /v1/live that records every message. */
export class LiveClient {
  readonly messages: any[] = [];
  closed: { code: number; reason: string } | undefined;
  private barriers = 0;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (m) => {
      checkFrame(m.toString());
      this.messages.push(JSON.parse(m.toString()));
    });
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }

  static async connect(url: string, headers: Record<string, string> = {}): Promise<LiveClient> {
    frameCheck();
    const ws = new WebSocket(url, { headers });
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    return new LiveClient(ws);
  }

  subscribe(channel: string, since?: string): void {
    this.ws.send(JSON.stringify({ op: 'subscribe', channel, ...(since ? { since } : {}) }));
  }

  captions(channel?: string): any[] {
    return this.messages.filter((m) => m.type === 'caption' && (!channel || m.channel === channel));
  }

  async waitForCaptions(n: number, channel?: string, timeoutMs = 20_000): Promise<any[]> {
    return waitFor(
      `${n} captions${channel ? ` on ${channel}` : ''} (have ${this.captions(channel).length})`,
      () => this.captions(channel).length >= n && this.captions(channel),
      timeoutMs,
      20,
    );
  }

  async waitFor(type: string, channel?: string): Promise<any> {
    return waitFor(
      `a ${type} message`,
      () => this.messages.find((m) => m.type === type && (!channel || m.channel === channel)),
      10_000,
      10,
    );
  }

  /**
   * Resolves once everything the server sent this socket before it read this call's marker has
   * arrived: a socket delivers in order, so what has not come by then was never sent. The marker is
   * an unsubscribe from a channel never subscribed, which the server answers at once.
   */
  async barrier(): Promise<void> {
    const channel = `barrier-${++this.barriers}`;
    this.ws.send(JSON.stringify({ op: 'unsubscribe', channel }));
    await waitFor(
      `the answer to ${channel}`,
      () => this.messages.some((m) => m.type === 'unsubscribed' && m.channel === channel),
      10_000,
      10,
    );
  }

  close(): void {
    this.ws.close();
  }
}

export function fragment(seq: number, text = `fragment ${seq}`, extra: Record<string, unknown> = {}) {
  return { seq, text, start: 1_700_000_000_000 + seq * 1000, end: 1_700_000_000_000 + seq * 1000 + 900, ...extra };
}
