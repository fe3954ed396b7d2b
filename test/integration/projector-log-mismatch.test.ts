// A read model built from another log: its stored position lies past the end of the log it is now
// given (the topic deleted and made again, a cluster restored from an older copy). Records the new
// log gets below that position would be taken for applied ones, so the projector says so — an
// error naming the partition and the rebuild to run, and a gauge of how far past the end it is —
// instead of waiting in silence; the status (API, admin page, CLI) shows it; and `npm start`
// refuses to start on such a database.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TOPICS } from '../../schemas/catalog.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { System, fragment, metricValue, waitFor } from '../support/system.ts';
import { launchChromium, openPage } from '../e2e/browser.ts';

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

it('the status shows how far past the end, in the API, the CLI and the admin page; the others read as usual', async () => {
  const r = await fetch(`${sys.api}/v1/admin/projections`, { headers: { authorization: 'Bearer test-admin-token' } });
  expect(r.status).toBe(200);
  const { projections } = (await r.json()) as { projections: { name: string; versions: { version: number; pastLogEnd: number }[] }[] };
  const past = Object.fromEntries(projections.map((p) => [p.name, p.versions.map((v) => v.pastLogEnd)]));
  // Analytics reads the same partition from its own position: within the log.
  expect(past).toEqual({ captions: [997], analytics: [0], streams: [0], uploads: [0], encodes: [0] });

  const cli = await sys.run(['bin/castlog.mjs', 'projections', 'status']);
  expect(cli.code).toBe(0);
  expect(cli.out).toContain('past the end of the log by 997 records: built from another log; rebuild captions');
  expect(cli.out.match(/past the end of the log/g)).toHaveLength(1);

  const browser = await launchChromium();
  try {
    const { page, problems } = await openPage(browser, { viewport: { width: 390, height: 844 } });
    await page.goto(`${sys.api}/admin`);
    await page.getByTestId('token-input').fill('test-admin-token');
    await page.getByTestId('token-submit').click();
    const warning = page.getByTestId('past-end-captions-1');
    await warning.waitFor();
    expect(await warning.textContent()).toBe('past its end by 997 records: built from another log, rebuild');
    expect(await page.getByTestId('past-end-analytics-1').count()).toBe(0);
    await page.screenshot({ path: '/tmp/castlog-admin-past-end.png', fullPage: true });
    expect(problems).toEqual([]);
  } finally {
    await browser.close();
  }
}, 120_000);

it('npm start refuses such a database before it starts anything, saying what to do', async () => {
  const started = await sys.run(['--import', 'tsx', 'apps/start.ts']);
  expect(started.code).toBe(1);
  expect(started.err).toContain(`castlog: the database ${sys.name} holds read models built from another log (captions v1)`);
  expect(started.err).toMatch(
    /Point KAFKA_BROKERS \/ TOPIC_PREFIX at the log it was built from, or start afresh with an empty database\. Nothing was started\./,
  );
  expect(started.out).not.toContain('castlog is running');
}, 120_000);
