// A single-node Kafka (KRaft, broker + controller in one JVM) from Apache Kafka's own jars,
// fetched by Maven from infra/stack/kafka/pom.xml. Data lives under .castlog/kafka (git-ignored).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { ROOT, STATE_DIR, waitForPort, isPortOpen } from './ports.ts';

const KAFKA_DIR = join(ROOT, 'infra', 'stack', 'kafka');
const LIB = join(KAFKA_DIR, 'lib');

export function ensureKafkaJars(): void {
  if (existsSync(LIB) && readdirSync(LIB).some((f) => f.startsWith('kafka_2.13-'))) return;
  console.error('fetching Apache Kafka jars with Maven (first run only)...');
  const r = spawnSync('mvn', ['-q', '-B', '-f', join(KAFKA_DIR, 'pom.xml'), 'dependency:copy-dependencies'], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('mvn could not fetch the Kafka jars (see output above)');
}

export interface LocalKafka {
  brokers: string;
  process: ChildProcess | undefined;
}

export async function startLocalKafka(port = 19092): Promise<LocalKafka> {
  const brokers = `127.0.0.1:${port}`;
  if (await isPortOpen(port)) return { brokers, process: undefined }; // one is already running: share it
  ensureKafkaJars();
  const dir = join(STATE_DIR, `kafka-${port}`);
  const data = join(dir, 'data');
  mkdirSync(dir, { recursive: true });
  const props = join(dir, 'server.properties');
  writeFileSync(
    props,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${port + 1}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${port + 1}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      `log.dirs=${data}`,
      'num.partitions=1',
      'auto.create.topics.enable=false',
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=10',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
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
  const java = (main: string, args: string[]) => [
    '-Xms256m',
    '-Xmx1g',
    '-XX:+UseG1GC',
    `-Dlog4j.configuration=file:${join(dir, 'log4j.properties')}`,
    '-cp',
    `${LIB}/*`,
    main,
    ...args,
  ];
  if (!existsSync(join(data, 'meta.properties'))) {
    const r = spawnSync(
      'java',
      java('kafka.tools.StorageTool', ['format', '-t', randomUUID().replace(/-/g, '').slice(0, 22), '-c', props, '--ignore-formatted']),
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`kafka storage format failed: ${r.stderr || r.stdout}`);
  }
  const out = openSync(join(dir, 'stdout.log'), 'a');
  const child = spawn('java', java('kafka.Kafka', [props]), { stdio: ['ignore', out, out], detached: false });
  await waitForPort(port, 60_000, () => child.exitCode !== null);
  if (child.exitCode !== null) throw new Error(`Kafka exited with ${child.exitCode}; see ${join(dir, 'stdout.log')}`);
  return { brokers, process: child };
}
