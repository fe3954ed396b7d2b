// A read model built from another log: its stored position lies past the end of the log it is now
// given (the topic deleted and made again, a cluster restored from an older copy). Records the new
// log gets below that position would be taken for applied ones, so the projector says so — an
// error naming the partition and the rebuild to run, and a gauge of how far past the end it is —
// instead of waiting in silence.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TOPICS } from '../../schemas/catalog.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { System, fragment, metricValue, waitFor } from '../support/system.ts';

let sys: System;
const CHANNEL = 'mismatch.news';

beforeAll(async () => {
  sys = await System.create();
  await sys.start('api');
}, 120_000);

afterAll(async () => {
  await sys?.stop();
});

it('says when a stored position lies past the end of the log, and by how much', async () => {
  const key = await sys.stationKey();
  const posted = await sys.postNdjson(CHANNEL, key, [1, 2, 3].map((seq) => JSON.stringify(fragment(seq))).join('\n') + '\n');
  expect(posted.lines.filter((l) => l.position)).toHaveLength(3);
  const partition = partitionFor(CHANNEL, TOPICS.captions.partitions);
  const end = (await sys.log.offsets('captions')).find((o) => o.partition === partition)!.high;
  expect(end).toBe(3);
  // As if the read model had applied 1,000 records of this partition from an earlier log.
  await sys.db
    .insertInto('projection_positions')
    .values({ projection: 'captions_v1', topic: 'captions', partition, next_offset: 1000 })
    .execute();

  await sys.start('projector');
  const said = await waitFor(
    'the projector to say so',
    () => sys.output.get('projector')?.find((l) => l.includes('past the end of the log')),
    30_000,
    100,
  );
  const line = JSON.parse(said.split('\n').find((l) => l.includes('past the end of the log'))!);
  expect(line).toMatchObject({ level: 50, projection: 'captions_v1', topic: 'captions', partition, position: 1000, logEnd: 3 });
  expect(line.msg).toMatch(/rebuild captions/);
  // Every other partition is where it should be: the gauge is this one's distance alone.
  expect(await metricValue(sys.projectorPort, 'castlog_projection_position_past_log_end')).toBe(997);
}, 120_000);
