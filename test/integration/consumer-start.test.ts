// A consumer that says where it starts (startAt) gets every record from there, once, in order:
// however long startAt takes to answer, and though kafkajs starts fetching before it has.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EventLog } from '../../infra/kafka/index.ts';
import { createLogger } from '../../infra/logger.ts';
import type { LogRecord } from '../../infra/kafka/types.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { waitFor } from '../support/system.ts';
import { testName } from '../support/test-data.ts';

let log: EventLog;
beforeAll(async () => {
  log = new EventLog((process.env.KAFKA_BROKERS ?? '127.0.0.1:19092').split(','), `${testName('start')}.`, createLogger('test', 'silent'));
  await log.ensureTopics();
});
afterAll(() => log?.close());

/** Issues `n` user ids, all keyed to one partition; returns their offsets there. */
async function appendUsers(key: string, n: number): Promise<number[]> {
  const positions = await log.append(
    Array.from({ length: n }, (_, i) => ({ type: 'UserIdIssued' as const, key, source: 'test', data: { userId: randomUUID(), at: i } })),
  );
  return positions.map((p) => p.offset);
}

/** Reads the streams topic with a startAt that answers after `delayMs`; the records of `key`'s partition it is handed. */
async function readFrom(key: string, start: (ends: { low: number; high: number }) => number, delayMs: number, until: number) {
  const partition = partitionFor(key, TOPICS.streams.partitions);
  const got: LogRecord[] = [];
  const consumer = await log.consume({
    groupId: EventLog.privateGroup('start-test'),
    topics: ['streams'],
    startAt: async (_topic, p) => {
      const ends = (await log.offsets('streams')).find((o) => o.partition === p)!;
      await new Promise((r) => setTimeout(r, delayMs));
      return p === partition ? start(ends) : ends.high;
    },
    onBatch: async (b) => void (b.partition === partition && got.push(...b.records)),
  });
  try {
    await waitFor(`records up to ${until}`, () => got.some((r) => r.offset >= until), 20_000);
    // Anything more that was going to come (a repeat, a late batch) has had time to.
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    await consumer.stop();
  }
  return got.map((r) => r.offset);
}

it('starts at the first record, not at the end, when startAt answers after fetching began', async () => {
  const key = `u-${randomUUID()}`;
  const before = await appendUsers(key, 5);
  const low = (await log.offsets('streams')).find((o) => o.partition === partitionFor(key, TOPICS.streams.partitions))!.low;
  const offsets = await readFrom(key, (e) => e.low, 1500, before.at(-1)!);
  expect(offsets).toEqual(Array.from({ length: before.at(-1)! - low + 1 }, (_, i) => low + i));
});

it('starts in the middle when asked to, handing nothing before it and nothing twice', async () => {
  const key = `u-${randomUUID()}`;
  const before = await appendUsers(key, 6);
  const from = before[3]!;
  const offsets = await readFrom(key, () => from, 1500, before.at(-1)!);
  expect(offsets).toEqual(Array.from({ length: before.at(-1)! - from + 1 }, (_, i) => from + i));
});

it('hands records appended while startAt is still answering', async () => {
  const key = `u-${randomUUID()}`;
  const [first] = await appendUsers(key, 1);
  const reading = readFrom(key, () => first!, 1500, first! + 4);
  await new Promise((r) => setTimeout(r, 300));
  await appendUsers(key, 4);
  expect(await reading).toEqual([0, 1, 2, 3, 4].map((i) => first! + i));
});
