// Scenario `connections` (issue 10, goal 4): how many idle subscribed WebSockets the fanout holds,
// what each costs it in memory, and how fast they connect and subscribe.
//
// The servers are test/bench/fanout-server.ts in castlog mode (the real Hub + startFanoutServer,
// uWebSockets.js, metrics; no Kafka, so the memory is the connections' and nothing else's). The
// clients are the raw frame-counting clients of test/bench/ws-clients.ts, each child process on
// its own 127.0.0.x source address: one address has ~28k ephemeral ports, and a process may hold
// fewer than 20,000 descriptors (the hard limit here), so 100,000 take several of both.
//
// Two phases, one after the other:
//   single: CONN_SINGLE connections to one fanout process (as many as its descriptors allow);
//   multi:  CONN_TOTAL connections spread over CONN_SERVERS fanout processes, all opened at once.
// In each: every connection must get its `subscribed` and then the one live caption fed to its
// channel (one round, one caption per channel), so the figures are of working subscribers.
// RSS per connection = (RSS after - RSS before) / connections opened in between, both after a full
// GC; "before" is taken after 5% of the connections (a warm-up), so that a process's own start-up
// (code compiled lazily, the heap growing to its working size) is not counted as connections'.
// The connect rate is of the same connections (the rest), on the parent's clock.
import type { ChildProcess } from 'node:child_process';
import { channelNames, cpuSeconds, fmt, forkBench, knob, nextMessage, now, send, sleep, stopChild } from './common.ts';

export interface ConnectionsPhase {
  /** castlog: the real Hub + server; uws: bare uWebSockets.js pub/sub, the floor, same clients. */
  server: 'castlog' | 'uws';
  servers: number;
  connections: number;
  /** Connections opened after the warm-up ones: what the rate and the memory per connection are of. */
  measured: number;
  clientProcs: number;
  sourceAddresses: string[];
  /** Parent's clock: start sent to the measured client processes -> every client's subscription confirmed. */
  connectSeconds: number;
  connectPerSec: number;
  connectPerSecPerServer: number;
  /** Connections per CPU-second of the fanout processes while they connected (less sensitive to other load). */
  connectPerServerCpuSecond: number;
  /** CPU-seconds the fanout processes and the client processes spent connecting. */
  connectCpuSeconds: { servers: number; clients: number };
  /** Connection attempts that failed and were retried (ws-clients retries 5 times). */
  retries: number;
  subscribed: number;
  /** Clients that got exactly the one caption fed to their channel. */
  gotCaption: number;
  rssBeforeMB: number[];
  rssAfterMB: number[];
  /** (Sum of RSS after - before) / measured connections; before = after the warm-up connections. */
  rssPerConnKB: number;
  /** Of which the JS heap (heapUsed after - before). */
  heapPerConnKB: number;
  problems: string[];
}

export interface ConnectionsResult {
  channels: number;
  single: ConnectionsPhase;
  /** The single phase against bare uWS pub/sub (no castlog logic), same run. */
  bare?: ConnectionsPhase;
  multi?: ConnectionsPhase;
}

const MB = 1024 * 1024;
/** Of each server's connections, the share opened first, before the memory baseline is taken. */
const WARM_SHARE = 0.05;
const round1 = (n: number) => Math.round(n * 10) / 10;

interface Memory {
  rss: number;
  heapUsed: number;
}

async function memoryNow(server: ChildProcess): Promise<Memory> {
  const reply = nextMessage(server, 'memory', 30_000);
  send(server, { type: 'memory' });
  const m = await reply;
  return { rss: m.rss, heapUsed: m.heapUsed };
}

/** A server's memory once its RSS has stopped moving: a fresh process gives pages back for a few
 *  seconds after start-up (freed heap is released lazily), by as much as 19,000 connections take. */
async function memory(server: ChildProcess): Promise<Memory> {
  let last = await memoryNow(server);
  for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
    await sleep(1000);
    const m = await memoryNow(server);
    const settled = Math.abs(m.rss - last.rss) < MB / 2;
    last = m;
    if (settled) break;
  }
  return last;
}

/**
 * Connections spread evenly over `servers` fanout processes, each served by `procsPerServer` client
 * processes; client process k opens its connections from 127.0.0.(firstAddress + k).
 */
async function phase(
  log: (s: string) => void,
  name: string,
  opts: {
    server: 'castlog' | 'uws';
    servers: number;
    connections: number;
    procsPerServer: number;
    firstAddress: number;
    addressesPerProc: number;
    channels: string[];
    concurrency: number;
  },
): Promise<ConnectionsPhase> {
  const { servers: nServers, connections, procsPerServer, channels } = opts;
  const problems: string[] = [];
  const servers: ChildProcess[] = [];
  const clients: { proc: ChildProcess; server: number; count: number; addresses: string[]; warm: boolean }[] = [];
  const prof = process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=.castlog/prof'] : [];
  try {
    const ports = await Promise.all(
      Array.from({ length: nServers }, async () => {
        const server = forkBench('./fanout-server.ts', {}, ['--expose-gc', ...prof]);
        servers.push(server);
        const listening = nextMessage(server, 'listening', 60_000);
        send(server, { type: 'start', mode: opts.server, channels, maxBackpressure: 1024 * 1024, history: 1000 });
        return (await listening).port as number;
      }),
    );
    // Client processes: of each server's connections, a warm-up share first (one process), then
    // the rest split over procsPerServer processes: those are the ones measured.
    const addClient = (server: number, count: number, warm: boolean) => {
      const first = opts.firstAddress + clients.length * opts.addressesPerProc;
      const addresses = Array.from({ length: opts.addressesPerProc }, (_, a) => `127.0.0.${first + a}`);
      clients.push({ proc: forkBench('./ws-clients.ts'), server, count, addresses, warm });
    };
    for (let s = 0; s < nServers; s++) {
      const share = Math.floor(connections / nServers) + (s < connections % nServers ? 1 : 0);
      const warm = Math.min(share - procsPerServer, Math.max(1, Math.round(share * WARM_SHARE)));
      addClient(s, warm, true);
      const rest = share - warm;
      for (let k = 0; k < procsPerServer; k++) addClient(s, Math.floor(rest / procsPerServer) + (k < rest % procsPerServer ? 1 : 0), false);
    }
    // Every client process up and listening first: their start-up is not part of the connect time.
    await Promise.all(
      clients.map((c) => {
        const up = nextMessage(c.proc, 'clock', 120_000);
        send(c.proc, { type: 'clock', t0: now() });
        return up;
      }),
    );
    const bases = new Map<number, number>();
    const startClients = (batch: typeof clients) => {
      const ready = batch.map((c) => nextMessage(c.proc, 'ready', 600_000));
      for (const c of batch) {
        const base = bases.get(c.server) ?? 0;
        bases.set(c.server, base + c.count);
        send(c.proc, {
          type: 'start',
          url: `ws://127.0.0.1:${ports[c.server]}/v1/live`,
          clients: c.count,
          base,
          channels,
          mode: 'raw',
          measureFrom: Number.MAX_SAFE_INTEGER,
          progressMs: 0,
          localAddresses: c.addresses,
          concurrency: opts.concurrency,
        });
      }
      return Promise.all(ready);
    };
    // The warm-up connections take the start-up noise (lazily compiled code, first allocations,
    // the heap growing past its initial size) out of both the memory and the time measured.
    const warmed = await startClients(clients.filter((c) => c.warm));
    const before = await Promise.all(servers.map(memory));
    const measured = clients.filter((c) => !c.warm);
    const counted = measured.reduce((a, c) => a + c.count, 0);
    const cpuOf = (ps: ChildProcess[]) => ps.reduce((a, p) => a + (cpuSeconds(p.pid!) ?? 0), 0);
    const serverCpu0 = cpuOf(servers);
    const clientCpu0 = cpuOf(measured.map((c) => c.proc));
    const t0 = now();
    const readies = [...warmed, ...(await startClients(measured))];
    const connectSeconds = (now() - t0) / 1000;
    const connectCpuSeconds = {
      servers: Math.round((cpuOf(servers) - serverCpu0) * 100) / 100,
      clients: Math.round((cpuOf(measured.map((c) => c.proc)) - clientCpu0) * 100) / 100,
    };
    const subscribed = readies.reduce((a, r) => a + (r.subscribed as number), 0);
    const retries = readies.reduce((a, r) => a + (r.failures as number), 0);
    if (subscribed < connections) problems.push(`only ${subscribed} of ${connections} subscriptions confirmed`);
    log(
      `connections ${name}: ${subscribed.toLocaleString()} of ${connections.toLocaleString()} subscribed ` +
        `in ${connectSeconds.toFixed(2)} s ` +
        `(${Math.round(counted / connectSeconds).toLocaleString()}/s after ${connections - counted} warm-up connections, ` +
        `${retries} retries; CPU-s fanouts ` +
        `${connectCpuSeconds.servers}, clients ${connectCpuSeconds.clients})`,
    );

    // One live caption per channel, from every server; every client must get its channel's one.
    const fed = await Promise.all(
      servers.map(async (server) => {
        const reply = nextMessage(server, 'rounded', 30_000);
        send(server, { type: 'round', perChannel: 1 });
        return (await reply).sent as number;
      }),
    );
    const expected = fed.reduce((a, b) => a + b, 0);
    const count = async () =>
      (
        await Promise.all(
          clients.map(async (c) => {
            const reply = nextMessage(c.proc, 'count', 30_000);
            send(c.proc, { type: 'count' });
            return (await reply).received as number;
          }),
        )
      ).reduce((a, b) => a + b, 0);
    const deadline = Date.now() + 60_000;
    let received = await count();
    while (received < expected && Date.now() < deadline) {
      await sleep(100);
      received = await count();
    }
    if (expected !== connections) problems.push(`the servers handed the caption to ${expected} sockets, not ${connections}`);
    let gotCaption = 0;
    for (const c of clients) {
      const reply = nextMessage(c.proc, 'snapshot', 60_000);
      send(c.proc, { type: 'snapshot' });
      const snap = await reply;
      gotCaption += (snap.perClient as number[]).filter((n) => n === 1).length;
      if (snap.closedUnexpectedly)
        problems.push(`${snap.closedUnexpectedly} connections from ${c.addresses.join(', ')} were closed by the server`);
    }
    if (gotCaption < connections) problems.push(`${connections - gotCaption} connections did not get exactly one caption`);
    const after = await Promise.all(servers.map(memory));
    const sum = (ms: Memory[], k: keyof Memory) => ms.reduce((a, m) => a + m[k], 0);
    const result: ConnectionsPhase = {
      server: opts.server,
      servers: nServers,
      connections,
      clientProcs: clients.length,
      sourceAddresses: clients.flatMap((c) => c.addresses),
      connectSeconds: Math.round(connectSeconds * 1000) / 1000,
      measured: counted,
      connectPerSec: Math.round(counted / connectSeconds),
      connectPerSecPerServer: Math.round(counted / connectSeconds / nServers),
      connectPerServerCpuSecond: connectCpuSeconds.servers > 0 ? Math.round(counted / connectCpuSeconds.servers) : 0,
      connectCpuSeconds,
      retries,
      subscribed,
      gotCaption,
      rssBeforeMB: before.map((m) => round1(m.rss / MB)),
      rssAfterMB: after.map((m) => round1(m.rss / MB)),
      rssPerConnKB: round1((sum(after, 'rss') - sum(before, 'rss')) / counted / 1024),
      heapPerConnKB: round1((sum(after, 'heapUsed') - sum(before, 'heapUsed')) / counted / 1024),
      problems,
    };
    log(
      `connections ${name}: ${gotCaption.toLocaleString()} got their caption; RSS ${result.rssBeforeMB.join('+')} -> ` +
        `${result.rssAfterMB.join('+')} MB, ${result.rssPerConnKB} KB per connection (JS heap ${result.heapPerConnKB} KB)` +
        `${problems.length ? ` PROBLEMS: ${problems.join('; ')}` : ''}`,
    );
    return result;
  } finally {
    for (const c of clients) send(c.proc, { type: 'finish' });
    for (const s of servers) send(s, { type: 'stop' });
    await Promise.all([...clients.map((c) => stopChild(c.proc)), ...servers.map((s) => stopChild(s))]);
  }
}

export async function connectionsBench(log: (s: string) => void): Promise<ConnectionsResult> {
  const channels = channelNames(knob('CONN_CHANNELS', 100));
  const single = knob('CONN_SINGLE', 19_000, 2_000);
  const singleProcs = knob('CONN_SINGLE_PROCS', 2);
  const servers = knob('CONN_SERVERS', 6, 2);
  const total = knob('CONN_TOTAL', 100_000, 4_000);
  const concurrency = knob('CONN_CONCURRENCY', 200);
  const addressesPerProc = Math.max(1, knob('CONN_ADDRESSES', 8));
  log(
    `connections: ${single.toLocaleString()} on one fanout from ${singleProcs} client processes, then ` +
      `${total.toLocaleString()} over ${servers} fanouts; ${channels.length} channels; ${concurrency} opening at once per client process`,
  );
  const result: ConnectionsResult = {
    channels: channels.length,
    single: await phase(log, 'single', {
      server: 'castlog',
      servers: 1,
      connections: single,
      procsPerServer: singleProcs,
      firstAddress: 2,
      addressesPerProc,
      channels,
      concurrency,
    }),
  };
  // Other source addresses for each phase: the previous phase's ports may still be in TIME_WAIT.
  let firstAddress = 2 + singleProcs * addressesPerProc;
  if (process.env.BENCH_CONN_BARE !== '0') {
    result.bare = await phase(log, 'bare uWS', {
      server: 'uws',
      servers: 1,
      connections: single,
      procsPerServer: singleProcs,
      firstAddress,
      addressesPerProc,
      channels,
      concurrency,
    });
    firstAddress += singleProcs * addressesPerProc;
  }
  if (servers > 0 && total > 0) {
    result.multi = await phase(log, 'multi', {
      server: 'castlog',
      servers,
      connections: total,
      procsPerServer: 1,
      firstAddress,
      addressesPerProc,
      channels,
      concurrency,
    });
  }
  return result;
}

type Row = [scenario: string, metric: string, castlog: string, baseline: string, ratio: string, target: string];

/** The results table's rows and notes for this scenario. */
export function connectionsReport(c: ConnectionsResult): { rows: Row[]; notes: string[] } {
  const rows: Row[] = [];
  const notes: string[] = [];
  const met = (ok: boolean) => (ok ? 'MET' : 'MISSED');
  const bare = c.bare;
  for (const p of [c.single, c.multi]) {
    if (!p) continue;
    const ok = p.problems.length === 0;
    const vsBare = p === c.single && bare;
    rows.push([
      `10 connections ${fmt(p.connections)} on ${p.servers} fanout${p.servers > 1 ? 's' : ''}`,
      'subscribed and got 1 live caption',
      `${fmt(p.gotCaption)}`,
      `${p.clientProcs} client procs, ${p.sourceAddresses.length} source addresses`,
      '',
      `all: ${met(ok)}`,
    ]);
    rows.push([
      '',
      'fanout RSS per connection KB (JS heap part)',
      `${fmt(p.rssPerConnKB, 1)} (${fmt(p.heapPerConnKB, 1)})`,
      vsBare
        ? `bare uWS ${fmt(bare.rssPerConnKB, 1)} (${fmt(bare.heapPerConnKB, 1)})`
        : `RSS ${p.rssBeforeMB.map((m) => fmt(m)).join('+')} -> ${p.rssAfterMB.map((m) => fmt(m)).join('+')} MB`,
      // Below a few hundred bytes the RSS difference is noise (small QUICK runs): no ratio then.
      vsBare && bare.rssPerConnKB >= 0.3 ? `${(p.rssPerConnKB / bare.rssPerConnKB).toFixed(2)}x` : '',
      `<= 10 KB: ${met(p.rssPerConnKB <= 10)}`,
    ]);
    rows.push([
      '',
      'connect + subscribe /s per fanout process',
      fmt(p.connectPerSecPerServer),
      `all ${fmt(p.connectPerSec)}/s, ${fmt(p.connectSeconds, 2)} s`,
      '',
      `>= 10,000: ${met(p.connectPerSecPerServer >= 10_000)}`,
    ]);
    rows.push([
      '',
      'connect + subscribe per fanout CPU-second',
      fmt(p.connectPerServerCpuSecond),
      vsBare
        ? `bare uWS ${fmt(bare.connectPerServerCpuSecond)}`
        : `CPU-s: fanouts ${fmt(p.connectCpuSeconds.servers, 2)}, clients ${fmt(p.connectCpuSeconds.clients, 2)}`,
      vsBare ? `${(p.connectPerServerCpuSecond / Math.max(1, bare.connectPerServerCpuSecond)).toFixed(2)}x` : '',
      // What the fanout could do with a core to itself; the wall rate above shares the box with the clients.
      `fanout side >= 10,000: ${met(p.connectPerServerCpuSecond >= 10_000)}`,
    ]);
    if (!ok) notes.push(`connections ${p.connections} on ${p.servers}: PROBLEMS: ${p.problems.join('; ')}`);
    notes.push(
      `connections ${p.connections} on ${p.servers}: connect CPU-s fanouts ${fmt(p.connectCpuSeconds.servers, 2)}, ` +
        `clients ${fmt(p.connectCpuSeconds.clients, 2)}; RSS ${p.rssBeforeMB.join('+')} -> ${p.rssAfterMB.join('+')} MB`,
    );
    if (p.retries) notes.push(`connections ${p.connections} on ${p.servers}: ${p.retries} connection attempts failed and were retried`);
  }
  if (bare && bare.problems.length) notes.push(`connections bare uWS: PROBLEMS: ${bare.problems.join('; ')}`);
  if (bare)
    notes.push(
      `connections bare uWS ${bare.connections}: ${fmt(bare.connectPerSec)}/s wall, RSS ${bare.rssBeforeMB.join('+')} -> ` +
        `${bare.rssAfterMB.join('+')} MB`,
    );
  notes.push(`connections: ${c.channels} channels, raw RFC 6455 clients, each client process on its own source addresses`);
  return { rows, notes };
}
