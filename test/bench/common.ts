// Shared pieces of the benchmark: knobs, clocks, HDR histograms, child processes, CPU sampling,
// and the capture-station client (a long-running NDJSON POST).
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import * as hdr from 'hdr-histogram-js';
import { appArgs, NODE_FLAGS } from '../../apps/node-args.ts';
import { waitFor, type AppName, type System } from '../support/system.ts';
import type { NewEvent } from '../../infra/kafka/index.ts';
import { sleep } from '../../infra/retry.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const QUICK = process.env.BENCH_QUICK === '1';

/** A numeric knob: BENCH_<NAME> wins, else the quick or the full default. */
export function knob(name: string, full: number, quick: number = full): number {
  const raw = process.env[`BENCH_${name}`];
  if (raw !== undefined && raw !== '') {
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`BENCH_${name} must be a non-negative number, got ${raw}`);
    return n;
  }
  return QUICK ? quick : full;
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on this machine. */
export const now = (): number => performance.timeOrigin + performance.now();
export { sleep };

// ---------------------------------------------------------------- histograms (microseconds)

export type Histogram = hdr.Histogram;

export function histogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
}

export const encodeHistogram = (h: Histogram): string => hdr.encodeIntoCompressedBase64(h);
export const decodeHistogram = (s: string): Histogram => hdr.decodeFromCompressedBase64(s);

export interface Latency {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Percentiles in milliseconds of a histogram recorded in microseconds. */
export function latency(h: Histogram): Latency {
  const ms = (us: number) => Math.round(us) / 1000;
  return {
    count: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: Math.round(h.mean) / 1000,
  };
}

// ---------------------------------------------------------------- child processes

const children = new Set<ChildProcess>();
const systems = new Set<System>();

/** Remembers a System so an interrupted bench can end its processes. */
export function trackSystem<T extends System>(sys: T): T {
  systems.add(sys);
  return sys;
}

/** Ends, by pid, every process this bench started and has not ended yet (on SIGINT/SIGTERM). */
export function killEverythingStarted(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const sys of systems) for (const c of sys.procs.values()) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}

/** Forks one of the bench's own TypeScript files with an IPC channel, run with the apps' node flags
 *  (a baseline server runs as castlog's own does). */
export function forkBench(file: string, env: NodeJS.ProcessEnv = {}, execArgv: string[] = []): ChildProcess {
  const child = fork(fileURLToPath(new URL(file, import.meta.url)), [], {
    cwd: ROOT,
    execArgv: [...NODE_FLAGS, '--import', 'tsx', ...execArgv],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export type Msg = { type: string; [k: string]: any };

/** The next message of a type from a child; rejects if the child exits first or time runs out. */
export function nextMessage<T extends Msg = Msg>(child: ChildProcess, type: string, timeoutMs = 120_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (m: Msg) => {
      if (m?.type === type) {
        cleanup();
        resolve(m as T);
      } else if (m?.type === 'fatal') {
        cleanup();
        reject(new Error(`child failed: ${m.error}`));
      }
    };
    const onExit = (code: number | null, signal: string | null) => (
      cleanup(),
      reject(new Error(`child exited (${code ?? signal}) before sending ${type}`))
    );
    const timer = setTimeout(() => (cleanup(), reject(new Error(`timed out waiting for ${type} from child`))), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

export function send(child: ChildProcess, m: Msg): void {
  if (child.connected) child.send(m);
}

/** Ends a child we started: asks politely, then SIGKILL by its pid. */
export async function stopChild(child: ChildProcess | undefined, graceMs = 3000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

/**
 * An HTTP/1.1 client with a bounded pool of keep-alive connections, as a load balancer keeps to
 * its upstream. An open-loop load must not open one connection per outstanding request (what
 * fetch's default agent does): once the server falls behind, thousands of connections overflow
 * its accept queue and the kernel resets them. With a pool, the excess waits here, and that wait
 * counts in the latency measured by the caller.
 */
export class PooledHttp {
  private readonly agent: http.Agent;

  constructor(
    private readonly base: string,
    connections: number,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections });
  }

  /** Sends a request without a body and reads the whole answer. Rejects only on a network error. */
  request(method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(`${this.base}${path}`, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * sys.start(app), or with BENCH_PROF set the same process under `node --cpu-prof` (profiles land
 * in .castlog/prof when it stops); registered in sys.procs either way, so sys.stop() ends it.
 */
export async function startApp(sys: System, app: AppName, env: NodeJS.ProcessEnv = {}): Promise<void> {
  // Whatever a scenario starts, an interrupted or crashed bench ends.
  trackSystem(sys);
  if (!process.env.BENCH_PROF) return sys.start(app, env);
  const lines: string[] = [];
  sys.output.set(app, lines);
  const child = spawn(process.execPath, appArgs(app, ['--cpu-prof', '--cpu-prof-dir=.castlog/prof']), {
    cwd: ROOT,
    env: { ...sys.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => lines.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => lines.push(d.toString()));
  sys.procs.set(app, child);
  const port = { api: sys.apiPort, fanout: sys.fanoutPort, projector: sys.projectorPort, relay: sys.relayPort }[app];
  await waitFor(
    `${app} to be ready`,
    async () => {
      if (child.exitCode !== null) throw new Error(`${app} exited: ${lines.join('')}`);
      return (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok;
    },
    60_000,
    200,
  );
}

/** Bucket counts of a Prometheus histogram from a /metrics page: le -> cumulative count. */
export async function scrapeHistogram(url: string, name: string): Promise<Map<number, number>> {
  const text = await (await fetch(url)).text();
  const out = new Map<number, number>();
  const re = new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) out.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  return out;
}

/** Sum of a Prometheus counter or gauge (all label sets) from a /metrics page. */
export async function scrapeValue(url: string, name: string): Promise<number | undefined> {
  try {
    const text = await (await fetch(url)).text();
    let sum: number | undefined;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum = (sum ?? 0) + Number(m[1]);
    return sum;
  } catch {
    return undefined;
  }
}

/** Share of observations at or under each bucket bound, between two scrapes. */
export function bucketShares(before: Map<number, number>, after: Map<number, number>): { total: number; le: Record<string, number> } {
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  const le: Record<string, number> = {};
  for (const [bound, n] of after) {
    if (bound === Infinity) continue;
    le[`${bound * 1000}ms`] = total ? Math.round(((n - (before.get(bound) ?? 0)) / total) * 10000) / 100 : 0;
  }
  return { total, le };
}

/** For a child script: report an uncaught failure to the parent, then exit. */
export function childFatal(err: unknown): never {
  const error = err instanceof Error ? `${err.message}\n${err.stack}` : String(err);
  try {
    process.send?.({ type: 'fatal', error });
  } catch {
    // the parent is gone
  }
  console.error(error);
  process.exit(1);
}

// ---------------------------------------------------------------- CPU accounting

const TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) a process has used, or undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS;
  } catch {
    return undefined;
  }
}

/** Busy and total jiffies of the whole machine. */
function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = line.reduce((a, b) => a + b, 0);
  const idle = (line[3] ?? 0) + (line[4] ?? 0);
  return { busy: total - idle, total };
}

/** The pid of the shared Kafka broker's JVM, to show its CPU (read-only /proc lookup). */
export function kafkaPid(): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (cmd.includes('kafka.Kafka') && cmd.includes('19092')) return Number(d);
    } catch {
      // gone
    }
  }
  return undefined;
}

export const CORES = (() => {
  try {
    return (
      readFileSync('/proc/cpuinfo', 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('processor')).length || 1
    );
  } catch {
    return 1;
  }
})();

/** CPU use of named processes and of the machine over an interval, in % of one core. */
export class CpuMeter {
  private start = new Map<string, number>();
  private t0 = 0;
  private m0 = machineTicks();
  constructor(private readonly pids: () => Record<string, number | undefined>) {}

  begin(): void {
    this.start.clear();
    for (const [name, pid] of Object.entries(this.pids())) {
      const s = pid === undefined ? undefined : cpuSeconds(pid);
      if (s !== undefined) this.start.set(name, s);
    }
    this.t0 = performance.now();
    this.m0 = machineTicks();
  }

  /** % of one core per process, plus machine (all cores, out of CORES*100) and "other" (not ours). */
  end(): Record<string, number> {
    const secs = (performance.now() - this.t0) / 1000;
    const out: Record<string, number> = {};
    let ours = 0;
    for (const [name, pid] of Object.entries(this.pids())) {
      const s0 = this.start.get(name);
      const s1 = pid === undefined ? undefined : cpuSeconds(pid);
      if (s0 === undefined || s1 === undefined) continue;
      const pct = Math.round(((s1 - s0) / secs) * 100);
      out[name] = pct;
      ours += pct;
    }
    const m1 = machineTicks();
    const machine = Math.round(((m1.busy - this.m0.busy) / Math.max(1, m1.total - this.m0.total)) * CORES * 100);
    out.machine = machine;
    out.other = Math.max(0, machine - ours);
    return out;
  }
}

/**
 * Lets a load that is already running warm up for `warmMs`, then measures it for `runMs`:
 * `measuring(true)` opens the window in which the load counts, `measuring(false)` closes it.
 */
export async function measureWindow(
  warmMs: number,
  runMs: number,
  meter: CpuMeter,
  measuring: (on: boolean) => void,
): Promise<{ seconds: number; cpu: Record<string, number> }> {
  await sleep(warmMs);
  measuring(true);
  meter.begin();
  const t0 = now();
  await sleep(runMs);
  measuring(false);
  const seconds = (now() - t0) / 1000;
  return { seconds, cpu: meter.end() };
}

// ---------------------------------------------------------------- capture stations

export const CAPTION_TEXT = 'and now the weather for the northern coast, with rain moving in by';

/** Captions as the bench writes them straight to the log: per channel, seq 1, 2, 3, … */
export class BenchCaptions {
  private readonly seq = new Map<string, number>();

  constructor(private readonly start = 1_700_000_000_000) {}

  next(channel: string): NewEvent<'CaptionFragmentReceived'> {
    const s = (this.seq.get(channel) ?? 0) + 1;
    this.seq.set(channel, s);
    const at = this.start + s * 100;
    return {
      type: 'CaptionFragmentReceived',
      key: channel,
      source: '/stations/bench',
      data: {
        channel,
        station: 'bench-station',
        seq: s,
        text: `${CAPTION_TEXT} ${s}`,
        start: at,
        end: at + 90,
        mode: 'rollup',
        lang: 'en',
        receivedAt: Date.now(),
      },
    };
  }
}

/** One NDJSON fragment line; seq doubles as the bench's global id of the fragment. */
export function fragmentLine(seq: number, text = CAPTION_TEXT): string {
  const start = 1_700_000_000_000 + seq * 100;
  return `{"seq":${seq},"text":"${text} ${seq}","start":${start},"end":${start + 90},"mode":"rollup","lang":"en"}\n`;
}

export interface AckEvent {
  seq: number;
  sentAt: number;
  ackAt: number;
}

/**
 * Fixed-rate pacing: `total` fragments at `rate` a second, round-robin over `streams`; every 2 ms
 * what is due goes out, one write per stream. Seqs run on from `firstSeq`; `lineOf` is told each
 * one in order, with its stream, and gives its line. Resolves with the last seq used once all are written.
 */
export function paceFragments(
  streams: StationStream[],
  rate: number,
  total: number,
  firstSeq: number,
  lineOf: (stream: StationStream, seq: number) => string,
): Promise<number> {
  let sent = 0;
  const start = now();
  return new Promise<number>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((now() - start) / 1000) * rate)) - sent;
      const batch = new Map<StationStream, { seqs: number[]; lines: string }>();
      for (let k = 0; k < due; k++) {
        const s = streams[sent % streams.length]!;
        const q = firstSeq + sent++;
        let b = batch.get(s);
        if (!b) batch.set(s, (b = { seqs: [], lines: '' }));
        b.seqs.push(q);
        b.lines += lineOf(s, q);
      }
      for (const [s, b] of batch) s.write(b.seqs, b.lines);
      if (sent >= total) {
        clearInterval(timer);
        resolve(firstSeq + sent - 1);
      }
    }, 2);
  });
}

/**
 * A capture station's long-running POST /v1/channels/{channel}/captions with an NDJSON body:
 * lines go out as they are written, acknowledgements come back in order on the same request.
 */
export class StationStream {
  private readonly req: http.ClientRequest;
  /** seq and send time of each line written and not yet acknowledged, in order. */
  private readonly sentSeq: number[] = [];
  private readonly sentAt: number[] = [];
  private head = 0;
  private rest = '';
  acked = 0;
  errors = 0;
  lastError: string | undefined;
  status: number | undefined;
  readonly ended: Promise<void>;
  /** The response status, once the API has answered the request's head. */
  readonly responded: Promise<number>;
  onAck: (a: AckEvent) => void = () => undefined;
  onDrainAcks: () => void = () => undefined;

  constructor(
    port: number,
    readonly channel: string,
    key: string,
  ) {
    this.req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: `/v1/channels/${channel}/captions`,
      agent: false,
      headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${key}`, 'transfer-encoding': 'chunked' },
    });
    this.req.setNoDelay(true);
    let responded!: (status: number) => void;
    this.responded = new Promise<number>((r) => (responded = r));
    this.ended = new Promise<void>((resolve, reject) => {
      this.req.on('error', (e) => (responded(0), reject(e)));
      this.req.on('response', (res) => {
        this.status = res.statusCode;
        responded(res.statusCode ?? 0);
        res.on('data', (chunk: Buffer) => this.onData(chunk));
        res.on('end', () => {
          // An error answer (401, 503...) is one JSON body, not NDJSON lines.
          if (this.rest.trim()) {
            this.errors++;
            this.lastError = `HTTP ${res.statusCode}: ${this.rest.trim().slice(0, 300)}`;
            this.rest = '';
          }
          resolve();
        });
        res.on('error', reject);
      });
    });
    this.ended.catch(() => undefined);
    this.req.flushHeaders();
  }

  get outstanding(): number {
    return this.sentSeq.length - this.head;
  }

  /** Writes fragments (lines already built) in one chunk. */
  write(seqs: number[], lines: string): void {
    const t = now();
    for (const s of seqs) {
      this.sentSeq.push(s);
      this.sentAt.push(t);
    }
    this.req.write(lines);
  }

  private onData(chunk: Buffer): void {
    const t = now();
    const text = this.rest + chunk.toString('utf8');
    let start = 0;
    for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', start)) {
      const line = text.slice(start, nl);
      start = nl + 1;
      if (!line) continue;
      const i = this.head++;
      const seq = this.sentSeq[i]!;
      const sentAt = this.sentAt[i]!;
      if (!line.includes('"position"')) {
        this.errors++;
        this.lastError = line;
        continue;
      }
      this.acked++;
      this.onAck({ seq, sentAt, ackAt: t });
    }
    this.rest = text.slice(start);
    // Forget what is acknowledged now and then, so the arrays stay small.
    if (this.head > 4096 && this.head * 2 > this.sentSeq.length) {
      this.sentSeq.splice(0, this.head);
      this.sentAt.splice(0, this.head);
      this.head = 0;
    }
    this.onDrainAcks();
  }

  /** Ends the request body; resolves when the API has answered every line and closed (or gives up). */
  async end(timeoutMs = 30_000): Promise<void> {
    this.req.end();
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.lastError ??= `no answer to ${this.outstanding} lines within ${timeoutMs} ms of the end of the request`;
        this.errors += this.outstanding;
        this.req.destroy();
        resolve();
      }, timeoutMs);
    });
    await Promise.race([this.ended.catch((e) => void (this.lastError ??= String(e))), gaveUp]);
    clearTimeout(timer);
  }

  destroy(): void {
    this.req.destroy();
  }
}

/**
 * Opens one stream per (channel, key), a few at a time, and opens again any the API refuses
 * (a 503 when its Kafka check fails): stations retry, and a refused request wrote nothing.
 * The API sends its response head with the first acknowledgement, so each stream is primed with
 * one fragment (`prime` gives its seq and line) and counts as open once that is acknowledged.
 */
export async function openStations(
  port: number,
  specs: { channel: string; key: string }[],
  prime: (channel: string) => { seq: number; line: string },
  concurrency = 10,
): Promise<{ streams: StationStream[]; refused: number; refusals: string[] }> {
  const streams: StationStream[] = new Array(specs.length);
  const refusals: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < specs.length) {
      const i = next++;
      const { channel, key } = specs[i]!;
      for (let attempt = 1; ; attempt++) {
        const s = new StationStream(port, channel, key);
        const acked = new Promise<void>((resolve) => (s.onDrainAcks = () => resolve()));
        const { seq, line } = prime(channel);
        s.write([seq], line);
        const status = await Promise.race([s.responded, sleep(30_000).then(() => -1)]);
        if (status === 200) {
          await Promise.race([acked, s.ended.catch(() => undefined), sleep(30_000)]);
          if (s.acked >= 1) {
            s.onDrainAcks = () => undefined;
            streams[i] = s;
            break;
          }
        }
        s.destroy();
        refusals.push(
          status === 200 ? `no acknowledgement (${s.lastError ?? 'none'})` : status === -1 ? 'no answer in 30 s' : `HTTP ${status}`,
        );
        if (attempt >= 15) throw new Error(`the API refused the stream for ${channel} ${attempt} times (last: ${refusals.at(-1)})`);
        await sleep(500);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, worker));
  return { streams, refused: refusals.length, refusals: [...new Set(refusals)] };
}

// ---------------------------------------------------------------- channels

export const channelName = (i: number): string => `bench.ch${String(i).padStart(3, '0')}`;
export const channelNames = (n: number): string[] => Array.from({ length: n }, (_, i) => channelName(i));

export const fmt = (n: number | undefined, digits = 0): string =>
  n === undefined || !Number.isFinite(n)
    ? 'n/a'
    : n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** The channels client `i` (counted over the whole population) subscribes to: k of them, spread evenly. */
export function channelsOf(channels: string[], i: number, k = 1): string[] {
  const stride = Math.max(1, Math.floor(channels.length / k));
  return Array.from({ length: k }, (_, j) => channels[(i + j * stride) % channels.length]!);
}
