// Admins rebuilding and checking read models, and outside consumers reading the log.
import { spawn } from 'node:child_process';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { System, fragment, waitFor } from '../support/system.ts';

let sys: System;
let key: string;
const admin = { authorization: 'Bearer test-admin-token' };
const adminCall = async (method: string, path: string) => {
  const r = await fetch(sys.api + path, { method, headers: admin });
  return { status: r.status, body: (await r.json()) as any };
};

beforeAll(async () => {
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('projector'), sys.start('relay')]);
  key = await sys.stationKey('admin-station');
});
afterAll(() => sys?.stop());

describe('rebuild', () => {
  it('builds the next version beside the serving one under live ingest and queries, then swaps: same rows, no failed query', async () => {
    const channels = ['rb.a', 'rb.b', 'rb.c'];
    for (const c of channels)
      await sys.postJson(
        c,
        key,
        Array.from({ length: 300 }, (_, i) => fragment(i + 1, `${c} ${i + 1}`)),
      );
    await waitFor('v1 caught up', async () => (await sys.fragments('rb.c')).length === 300);

    // Steady ingest on every channel at once, so the serving version is never still: the swap
    // cannot wait for an instant when the two versions happen to be level.
    let ingesting = true;
    let posted = 0;
    const ingest = Promise.all(
      channels.map(async (c) => {
        for (let s = 301; ingesting; s++, posted++) await sys.postJson(c, key, [fragment(s, `live ${s}`)]);
      }),
    );
    let queries = 0;
    const failures: string[] = [];
    let querying = true;
    const query = (async () => {
      while (querying) {
        for (const path of [
          '/v1/channels',
          '/v1/channels/rb.a/captions?limit=50',
          '/v1/channels/rb.b/captions?limit=5&after=0:-1',
          '/v1/search?q=live&channel=rb.a',
        ]) {
          const r = await fetch(sys.api + path).catch((e) => ({ status: 0, text: async () => String(e) }));
          queries++;
          if (r.status !== 200 && !(path.includes('after') && r.status === 400)) failures.push(`${path}: ${r.status} ${await r.text()}`);
        }
      }
    })();

    // Two at once: one starts v2, the other is refused while v2 is building (a 900-row build can
    // be swapped in before a second request sent after the first is answered).
    const both = await Promise.all([1, 2].map(() => adminCall('POST', '/v1/admin/projections/captions/rebuild')));
    expect(both.map((r) => r.status).sort()).toEqual([202, 409]);
    expect(both.find((r) => r.status === 202)!.body).toEqual({ name: 'captions', building: 2 });
    const building = (await adminCall('GET', '/v1/admin/projections')).body.projections.find((p: any) => p.name === 'captions');
    expect([building.current, building.building]).toEqual(expect.arrayContaining([2]));

    await waitFor(
      'v2 swapped in',
      async () => (await adminCall('GET', '/v1/admin/projections')).body.projections.find((p: any) => p.name === 'captions').current === 2,
      60_000,
      200,
    ).catch(async (e: Error) => {
      // Say where each version stood, so a swap that never came can be told from a build that stalled.
      const { rows } = await sql`SELECT v.*, p.projection, p.partition, p.next_offset FROM projection_versions v
        JOIN projection_positions p ON p.projection LIKE v.name || '_v%'
        WHERE v.name = 'captions' ORDER BY p.projection, p.partition`.execute(sys.db);
      throw new Error(`${e.message}\n${JSON.stringify(rows)}`);
    });
    ingesting = false;
    await ingest;
    querying = false;
    await query;
    expect(failures).toEqual([]);
    expect(queries).toBeGreaterThan(10);

    // Every fragment, once, in the serving version...
    const total = 900 + posted;
    await waitFor('v2 has everything', async () => {
      const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM caption_fragments WHERE channel LIKE 'rb.%'`.execute(sys.db);
      return rows[0]!.n === total;
    });
    // ...and the rows v1 had are the same rows in v2.
    const cols = sql`channel, partition, "offset", station, seq, text, start_ms, end_ms, mode, lang, received_at_ms`;
    const { rows: v1only } =
      await sql`SELECT ${cols} FROM captions_v1.caption_fragments EXCEPT SELECT ${cols} FROM captions_v2.caption_fragments`.execute(sys.db);
    expect(v1only).toEqual([]);
    const { rows: v1count } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM captions_v1.caption_fragments`.execute(sys.db);
    expect(v1count[0]!.n).toBeGreaterThanOrEqual(900);
    // The readers' indexes, built once v2 had caught up, are all there: the same as v1's.
    const indexes = async (schema: string) =>
      (
        await sql<{ indexname: string }>`SELECT indexname FROM pg_indexes WHERE schemaname = ${schema} ORDER BY indexname`.execute(sys.db)
      ).rows.map((r) => r.indexname);
    expect(await indexes('captions_v2')).toEqual(await indexes('captions_v1'));
    expect(await indexes('captions_v2')).toEqual(
      expect.arrayContaining(['caption_fragments_search', 'caption_fragments_by_channel', 'caption_fragments_by_time']),
    );
    const ch = await sys.get('/v1/channels');
    expect(ch.body.channels.filter((c: any) => c.id.startsWith('rb.')).reduce((n: number, c: any) => n + c.fragmentCount, 0)).toBe(total);
  }, 120_000);

  it('refuses without the admin token, and names an unknown projection', async () => {
    expect((await fetch(`${sys.api}/v1/admin/projections`)).status).toBe(401);
    const unknown = await adminCall('POST', '/v1/admin/projections/nope/rebuild');
    expect(unknown.status).toBe(404);
    expect(unknown.body.field).toBe('name');
  });
});

describe('verify', () => {
  it('finds a row deleted behind the projection and names its channel and hour', async () => {
    await sys.postJson('vf.one', key, [fragment(1, 'kept'), fragment(2, 'deleted behind its back'), fragment(3, 'kept too')]);
    await waitFor('rows', async () => (await sys.fragments('vf.one')).length === 3);
    const clean = await adminCall('POST', '/v1/admin/projections/captions/verify');
    expect(clean.body).toMatchObject({ ok: true, differences: [] });
    expect(clean.body.checked).toBeGreaterThanOrEqual(3);

    const { rows } = await sql<{ current: number }>`SELECT current FROM projection_versions WHERE name = 'captions'`.execute(sys.db);
    await sql`DELETE FROM ${sql.id(`captions_v${rows[0]!.current}`, 'caption_fragments')} WHERE channel = 'vf.one' AND seq = 2`.execute(
      sys.db,
    );
    const dirty = await adminCall('POST', '/v1/admin/projections/captions/verify');
    const hour = new Date(Math.floor(fragment(2).start / 3_600_000) * 3_600_000).toISOString();
    expect(dirty.body).toMatchObject({
      ok: false,
      differences: [{ channel: 'vf.one', hour, inLog: expect.any(Number), inModel: expect.any(Number) }],
    });
    expect(dirty.body.differences[0].inLog - dirty.body.differences[0].inModel).toBe(1);
  }, 60_000);
});

describe('reading the log from outside', () => {
  it('castlog tail prints every event type decoded, as JSON lines', async () => {
    // Some stream-limit events too, through the event store and the relay.
    const u = (await sys.get('/users/newId')).body.userId;
    const s = (await sys.get('/streams/newId')).body.streamId;
    await fetch(`${sys.api}/streams/${s}/activate`, { method: 'PATCH', headers: { 'x-userid': u } });
    await fetch(`${sys.api}/streams/${s}/deactivate`, { method: 'PATCH', headers: { 'x-userid': u } });
    await sys.postJson('tail.one', key, [fragment(1, 'for tail')]);

    const lines = async (topic: string, want: (l: any[]) => boolean) => {
      const cli = spawn(process.execPath, ['bin/castlog.mjs', 'tail', topic, '--from', '2000-01-01T00:00:00Z'], { env: sys.env });
      const out: any[] = [];
      let buf = '';
      cli.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const parts = buf.split('\n');
        buf = parts.pop()!;
        for (const p of parts) out.push(JSON.parse(p));
      });
      try {
        return await waitFor(`tail ${topic}`, () => want(out) && out, 30_000, 100);
      } finally {
        cli.kill('SIGINT');
      }
    };
    const captions = await lines('captions', (l) => l.some((x) => x.data?.text === 'for tail'));
    expect(captions.find((x) => x.data.text === 'for tail')).toMatchObject({
      type: 'CaptionFragmentReceived',
      version: 1,
      key: 'tail.one',
      position: expect.stringMatching(/^\d+:\d+$/),
      meta: { type: 'CaptionFragmentReceived' },
      data: { channel: 'tail.one', station: 'admin-station' },
    });
    // Every type, not only the last event: the ids' events are in other partitions, read in parallel.
    const types = ['UserIdIssued', 'StreamIdIssued', 'StreamActivated', 'StreamDeactivated'];
    const streams = await lines(
      'streams',
      (l) => l.some((x) => x.type === 'StreamDeactivated' && x.data.userId === u) && types.every((t) => l.some((x) => x.type === t)),
    );
    expect(new Set(streams.map((x) => x.type))).toEqual(
      new Set(['UserIdIssued', 'StreamIdIssued', 'StreamActivated', 'StreamDeactivated']),
    );
    expect(streams.find((x) => x.type === 'StreamActivated')).toMatchObject({
      meta: { stream: `viewer-${u}`, streamVersion: 2 },
      data: { userId: u, streamId: s },
    });
  }, 90_000);

  it('tail refuses a bad --from and an unknown topic with a clear message', async () => {
    expect(await sys.run(['bin/castlog.mjs', 'tail', 'captions', '--from', 'last tuesday'])).toMatchObject({
      code: 1,
      err: expect.stringMatching(/--from must be/),
    });
    expect(await sys.run(['bin/castlog.mjs', 'tail', 'nope'])).toMatchObject({ code: 1, err: expect.stringMatching(/unknown topic nope/) });
  });

  it('projections status names the topic a Kafka does not have, instead of a client library error', async () => {
    const elsewhere = `${sys.env.TOPIC_PREFIX}elsewhere.`;
    const r = await sys.run(['bin/castlog.mjs', 'projections', 'status'], { TOPIC_PREFIX: elsewhere });
    expect(r.code).toBe(1);
    expect(r.out).toBe('');
    expect(r.err).toMatch(
      new RegExp(
        `^castlog: topic ${elsewhere.replace(/\./g, '\\.')}\\w+ does not exist on this Kafka: check KAFKA_BROKERS and TOPIC_PREFIX`,
      ),
    );
  });

  it('serves every schema by fingerprint, enough to decode a record without our code', async () => {
    const all = await sys.get('/v1/schemas');
    expect(all.status).toBe(200);
    expect(all.body.schemas.map((s: any) => s.event)).toEqual(expect.arrayContaining(['CaptionFragmentReceived', 'StreamActivated']));
    const row = await sys.db.selectFrom('events').select('data').limit(1).executeTakeFirstOrThrow();
    const fp = Buffer.from(row.data).subarray(2, 10).toString('hex');
    const one = await sys.get(`/v1/schemas/${fp}`);
    expect(one.status).toBe(200);
    const avro = await import('avsc');
    const type = avro.default.Type.forSchema(one.body.schema);
    expect(type.fromBuffer(Buffer.from(row.data).subarray(10))).toHaveProperty('at');
    expect((await sys.get('/v1/schemas/0000000000000000')).status).toBe(404);
  });
});
