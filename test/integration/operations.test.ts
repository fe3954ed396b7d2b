// What operators look at: health, readiness, Prometheus metrics, JSON logs.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promtoolCheck, scrape } from '../support/metrics.ts';
import { LiveClient, System, fragment, waitFor, type ProcessName } from '../support/system.ts';

const exec = promisify(execFile);
const PROCESSES: ProcessName[] = ['api', 'projector', 'fanout', 'relay', 'worker', 'matcher', 'notifier'];

let sys: System;
beforeAll(async () => {
  sys = await System.create({ LOG_LEVEL: 'info' });
  await Promise.all(PROCESSES.map((p) => sys.start(p)));
});
afterAll(() => sys?.stop());

it('reports health and readiness of every process', async () => {
  for (const p of PROCESSES) {
    const port = sys.ports.get(p)!;
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status, p).toBe(200);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status, p).toBe(200);
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

it("every process's /metrics passes Prometheus' own linter (promtool check metrics)", async () => {
  for (const p of PROCESSES) {
    const text = await scrape(sys.ports.get(p)!);
    expect(text, p).toMatch(new RegExp(`^# TYPE castlog_\\w+ `, 'm'));
    expect(await promtoolCheck(text), p).toEqual({ code: 0, output: '' });
  }
});

describe('the Grafana dashboard (infra/grafana/castlog.json)', () => {
  const dashboard = JSON.parse(readFileSync(join(import.meta.dirname, '../../infra/grafana/castlog.json'), 'utf8'));
  const exprs: string[] = dashboard.panels.flatMap((p: { targets?: { expr: string }[] }) => (p.targets ?? []).map((t) => t.expr));

  it('has only valid PromQL (promtool check rules)', async () => {
    expect(exprs.length).toBeGreaterThan(20);
    const dir = await mkdtemp(join(tmpdir(), 'castlog-dashboard-'));
    try {
      // Grafana's $__rate_interval is not PromQL; any range stands in for it here.
      const rules = exprs.map((expr, i) => ({ record: `dashboard:panel_${i}`, expr: expr.replaceAll('$__rate_interval', '1m') }));
      await writeFile(join(dir, 'rules.json'), JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      const { stdout } = await exec('promtool', ['check', 'rules', join(dir, 'rules.json')]);
      expect(stdout).toContain(`SUCCESS: ${exprs.length} rules found`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names only metrics some process exports', async () => {
    const families = new Set<string>();
    for (const p of PROCESSES) {
      for (const [, name, type] of (await scrape(sys.ports.get(p)!)).matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
        families.add(name!);
        if (type === 'histogram') for (const suffix of ['_bucket', '_count', '_sum']) families.add(name + suffix);
      }
    }
    const used = new Set(exprs.flatMap((e) => e.match(/\b(?:castlog|nodejs|process)_\w+/g) ?? []));
    expect(used.size).toBeGreaterThan(15);
    expect([...used].filter((m) => !families.has(m))).toEqual([]);
  });
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
