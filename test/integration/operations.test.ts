// What operators look at: health, readiness, Prometheus metrics, JSON logs.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LiveClient, System, fragment, waitFor } from '../support/system.ts';

let sys: System;
beforeAll(async () => {
  sys = await System.create({ LOG_LEVEL: 'info' });
  await Promise.all([sys.start('api'), sys.start('projector'), sys.start('fanout')]);
});
afterAll(() => sys?.stop());

it('reports health and readiness of every process', async () => {
  for (const port of [sys.apiPort, sys.fanoutPort, sys.projectorPort]) {
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(200);
  }
  expect((await sys.get('/readyz')).body).toEqual({ status: 'ready', kafka: true, postgres: true });
});

it('exposes consumer lag and the end-to-end latency histogram in Prometheus format', async () => {
  const key = await sys.stationKey();
  const c = await LiveClient.connect(sys.live);
  c.subscribe('ops.metrics');
  await c.waitFor('subscribed', 'ops.metrics');
  await sys.postJson('ops.metrics', key, [fragment(1), fragment(2)]);
  await c.waitForCaptions(2);
  c.close();
  await waitFor('projector', async () => (await sys.fragments('ops.metrics')).length === 2);

  const api = await (await fetch(`${sys.api}/metrics`)).text();
  expect(api).toMatch(/^# TYPE castlog_consumer_lag gauge$/m);
  expect(api).toMatch(/^castlog_consumer_lag\{consumer="captions_v1",topic="captions",partition="\d+",app="api"\} 0$/m);
  expect(api).toMatch(/^castlog_ingest_fragments_total\{outcome="accepted",app="api"\} 2$/m);

  const fanout = await (await fetch(`http://127.0.0.1:${sys.fanoutPort}/metrics`)).text();
  expect(fanout).toMatch(/^# TYPE castlog_e2e_latency_seconds histogram$/m);
  expect(fanout).toMatch(/^castlog_e2e_latency_seconds_count\{app="fanout"\} 2$/m);
  expect(fanout).toMatch(/^castlog_fanout_deliveries_total\{app="fanout"\} 2$/m);

  const projector = await (await fetch(`http://127.0.0.1:${sys.projectorPort}/metrics`)).text();
  expect(projector).toMatch(/^castlog_projection_events_total\{projection="captions",app="projector"\} 2$/m);
});

it('writes its logs as JSON lines', async () => {
  for (const app of ['api', 'projector', 'fanout'] as const) {
    const lines = sys.output
      .get(app)!
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('{'));
    expect(lines.length, app).toBeGreaterThan(0);
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ app, level: expect.any(Number), msg: expect.any(String) });
  }
});
