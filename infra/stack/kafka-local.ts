// Kafka (KRaft) from Apache Kafka's own jars, fetched by Maven from infra/stack/kafka/pom.xml: one
// node by default (broker and controller in one JVM), or a cluster of several such nodes on
// consecutive ports (CASTLOG_LOCAL_BROKERS=3) whose topics are replicated as the catalog asks.
// Data lives under .castlog/kafka-* (git-ignored).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { replicationFor } from '../../schemas/catalog.ts';
import { ROOT, STATE_DIR, waitForPort, waitForPortClosed, isPortOpen } from './ports.ts';
import { EventLog, withTimeout } from '../kafka/index.ts';
import { createLogger } from '../logger.ts';
import { retry, sleep } from '../retry.ts';

const KAFKA_DIR = join(ROOT, 'infra', 'stack', 'kafka');
const LIB = join(KAFKA_DIR, 'lib');

export function ensureKafkaJars(): void {
  if (existsSync(LIB) && readdirSync(LIB).some((f) => f.startsWith('kafka_2.13-'))) return;
  console.error('fetching Apache Kafka jars with Maven (first run only)...');
  const r = spawnSync('mvn', ['-q', '-B', '-f', join(KAFKA_DIR, 'pom.xml'), 'dependency:copy-dependencies'], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('mvn could not fetch the Kafka jars (see output above)');
}

/**
 * Whether what listens at `brokers` is a working Kafka, asked twice a second apart: a broker told
 * to stop a moment ago still listens for a while but soon lists no broker (it has left its
 * cluster), and something else on the port does not answer Kafka's protocol at all.
 */
function answersAsKafka(brokers: string): Promise<boolean> {
  return askingBrokers(brokers, async (brokerCount) => {
    const listsBrokers = async () => (await withTimeout(brokerCount(), 10_000)) > 0;
    return (await listsBrokers()) && (await sleep(1000), await listsBrokers());
  }).catch(() => false);
}

/**
 * Waits until the cluster lists every broker: one listens before the controller has it, and topics
 * made meanwhile would be given the replication of the brokers listed then (fewer copies than asked).
 */
function untilListed(brokers: string, nodes: number): Promise<void> {
  return askingBrokers(brokers, (brokerCount) =>
    // Up to two minutes, as a loaded machine may need.
    retry(
      async () => {
        const listed = await brokerCount();
        if (listed < nodes) throw new Error(`the local Kafka cluster lists ${listed} of its ${nodes} brokers`);
      },
      { attempts: 600, delayMs: 200 },
    ),
  );
}

/** How many brokers the cluster at `brokers` lists, asked over a connection of its own. */
export const brokersListed = (brokers: string): Promise<number> => askingBrokers(brokers, (brokerCount) => brokerCount());

/** Runs `ask` with a way to count the brokers listed at `brokers`, over a connection closed after. */
async function askingBrokers<T>(brokers: string, ask: (brokerCount: () => Promise<number>) => Promise<T>): Promise<T> {
  const log = new EventLog(brokers.split(','), '', createLogger('kafka-local', 'silent'));
  try {
    return await ask(() => log.brokerCount());
  } finally {
    await log.close().catch(() => undefined);
  }
}

/** How many local brokers `npm start` and `npm test` run: CASTLOG_LOCAL_BROKERS, one by default. */
export function localBrokerCount(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.CASTLOG_LOCAL_BROKERS ?? 1);
  if (!Number.isInteger(n) || n < 1 || n > 9) throw new Error(`CASTLOG_LOCAL_BROKERS must be a whole number from 1 to 9, not ${n}`);
  return n;
}

/** One node of a local cluster: its broker listens on `port`, its controller on `port + 1`. */
export class KafkaNode {
  process: ChildProcess | undefined;

  constructor(
    readonly id: number,
    readonly port: number,
    private readonly dir: string,
  ) {}

  get running(): boolean {
    return !!this.process && this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Starts the node's JVM (on its kept data) and waits for its broker port. */
  async start(): Promise<void> {
    const java = javaArgs(this.dir, 'kafka.Kafka', [join(this.dir, 'server.properties')]);
    const out = openSync(join(this.dir, 'stdout.log'), 'a');
    const child = spawn('java', java, { stdio: ['ignore', out, out], detached: false });
    this.process = child;
    await waitForPort(this.port, 240_000, () => child.exitCode !== null);
    if (child.exitCode !== null)
      throw new Error(`Kafka node ${this.id} exited with ${child.exitCode}; see ${join(this.dir, 'stdout.log')}`);
  }

  /** Stops the node: SIGKILL is a crash (nothing flushed), SIGTERM a clean shutdown. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<void> {
    const p = this.process;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => (p.kill('SIGKILL'), resolve()), graceMs);
      p.once('exit', () => (clearTimeout(t), resolve()));
      p.kill(signal);
    });
  }
}

export interface LocalKafka {
  /** The bootstrap list, every node's broker: `127.0.0.1:p1,127.0.0.1:p2,…`. */
  brokers: string;
  /** The nodes started here; empty when a broker already listened on the first port (shared). */
  nodes: KafkaNode[];
  /** The single node's process (one-node clusters started here), for callers that kill it. */
  process: ChildProcess | undefined;
  stop: (signal?: NodeJS.Signals) => Promise<void>;
}

/**
 * Starts `nodes` KRaft nodes, each broker and controller, on ports `port`, `port + 2`, … (their
 * controllers on the next port up). When a working broker already answers on `port`, it is shared
 * as it is: its topics' replication is checked (and a shortfall reported) when castlog starts. One
 * that listens but does not work (shutting down) is waited out for `busyPortWaitMs`, then ours starts.
 */
export async function startLocalKafka(port = 19092, nodes = 1, busyPortWaitMs = 60_000): Promise<LocalKafka> {
  const ports = Array.from({ length: nodes }, (_, i) => port + 2 * i);
  const brokers = ports.map((p) => `127.0.0.1:${p}`).join(',');
  if (await isPortOpen(port)) {
    if (await answersAsKafka(brokers)) return { brokers, nodes: [], process: undefined, stop: async () => undefined };
    if (!(await waitForPortClosed(port, busyPortWaitMs))) {
      throw new Error(`port ${port} is taken by something that is not a working Kafka broker; stop it, or set KAFKA_BROKERS`);
    }
  }
  ensureKafkaJars();
  const clusterId = randomUUID().replace(/-/g, '').slice(0, 22);
  const voters = ports.map((p, i) => `${i + 1}@127.0.0.1:${p + 1}`).join(',');
  const started = ports.map((p, i) => {
    // One node keeps the directory it always had; a cluster's nodes have their own.
    const dir = join(STATE_DIR, nodes === 1 ? `kafka-${port}` : `kafka-${port}-of-${nodes}-node-${i + 1}`);
    writeNodeConfig(dir, i + 1, p, voters, nodes);
    const data = join(dir, 'data');
    if (!existsSync(join(data, 'meta.properties'))) {
      const args = ['format', '-t', clusterId, '-c', join(dir, 'server.properties'), '--ignore-formatted'];
      const r = spawnSync('java', javaArgs(dir, 'kafka.tools.StorageTool', args), { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`kafka storage format failed: ${r.stderr || r.stdout}`);
    }
    return new KafkaNode(i + 1, p, dir);
  });
  // Together: a controller quorum needs a majority of its voters before any broker listens (on a
  // loaded machine, three JVMs may take minutes).
  await Promise.all(started.map((n) => n.start()));
  if (nodes > 1) await untilListed(brokers, nodes);
  return {
    brokers,
    nodes: started,
    get process() {
      return started.length === 1 ? started[0]!.process : undefined;
    },
    stop: async (signal = 'SIGTERM') => void (await Promise.all(started.map((n) => n.stop(signal)))),
  };
}

function writeNodeConfig(dir: string, id: number, port: number, voters: string, nodes: number): void {
  const data = join(dir, 'data');
  mkdirSync(dir, { recursive: true });
  // Kafka's own topics (group offsets, transactions) as safe as castlog's, by the catalog's rule.
  const { replicationFactor, minInsyncReplicas } = replicationFor(nodes);
  writeFileSync(
    join(dir, 'server.properties'),
    [
      'process.roles=broker,controller',
      `node.id=${id}`,
      `controller.quorum.voters=${voters}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${port + 1}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      `log.dirs=${data}`,
      'num.partitions=1',
      'auto.create.topics.enable=false',
      `default.replication.factor=${replicationFactor}`,
      `min.insync.replicas=${minInsyncReplicas}`,
      `offsets.topic.replication.factor=${replicationFactor}`,
      'offsets.topic.num.partitions=10',
      `transaction.state.log.replication.factor=${replicationFactor}`,
      `transaction.state.log.min.isr=${minInsyncReplicas}`,
      // Only an in-sync replica may lead: an acknowledged event is never given up for availability.
      'unclean.leader.election.enable=false',
      // A lone member joins its group at once instead of waiting for others.
      'group.initial.rebalance.delay.ms=0',
      'log.retention.hours=168',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'log4j.properties'),
    [
      'log4j.rootLogger=WARN, file',
      'log4j.appender.file=org.apache.log4j.FileAppender',
      `log4j.appender.file.File=${join(dir, 'kafka.log')}`,
      'log4j.appender.file.layout=org.apache.log4j.PatternLayout',
      'log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n',
      '',
    ].join('\n'),
  );
}

function javaArgs(dir: string, main: string, args: string[]): string[] {
  return [
    '-Xms256m',
    '-Xmx1g',
    '-XX:+UseG1GC',
    `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`,
    '-cp',
    `${LIB}/*`,
    main,
    ...args,
  ];
}
