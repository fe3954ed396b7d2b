// Concurrent stream limits through real API processes, the event store in Postgres, the relay
// and Kafka: races across instances, leases, outages, and canWatch's own scenarios.
import { getPriority } from 'node:os';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveClient, System, waitFor } from '../support/system.ts';
import { TcpProxy } from '../support/proxy.ts';
import { streamIdStream } from '../../domain/streams/stream-ids.ts';
import { viewerStream } from '../../domain/streams/viewer.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import { TOPICS } from '../../schemas/catalog.ts';

let sys: System;
let secondApi: System; // a second API process on the same database and topics
const LIMIT = 3;

async function call(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: unknown) {
  const r = await fetch(base + path, {
    method,
    headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as any };
}
async function issue(base: string, path: string, field: string): Promise<string> {
  const r = await call(base, 'GET', path);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body[field];
}
const newUser = (base = sys.api) => issue(base, '/users/newId', 'userId');
const newStream = (base = sys.api) => issue(base, '/streams/newId', 'streamId');
/** Ids for a test, made a few at a time: making them is setup, not the race under test. */
async function many<T>(n: number, make: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += 25) out.push(...(await Promise.all(Array.from({ length: Math.min(25, n - i) }, (_, j) => make(i + j)))));
  return out;
}
const activate = (base: string, userId: string, streamId: string, method = 'PATCH') =>
  call(base, method, `/streams/${streamId}/activate`, { 'x-userid': userId });
const deactivate = (base: string, userId: string, streamId: string, method = 'PATCH') =>
  call(base, method, `/streams/${streamId}/deactivate`, { 'x-userid': userId });

beforeAll(async () => {
  sys = await System.create({ STREAM_LIMIT: String(LIMIT) });
  await Promise.all([sys.start('api'), sys.start('relay'), sys.start('projector'), sys.start('fanout')]);
  secondApi = await System.sharing(sys);
  await secondApi.start('api');
});
afterAll(async () => {
  await secondApi?.stop();
  await sys?.stop();
});

describe("canWatch's end-to-end scenarios, as its client runs them (PUT, x-userid)", () => {
  // canWatch's client (src/client.js) uses superagent: a non-2xx answer rejects the promise.
  const client = {
    async request(path: string, method = 'GET', userId?: string) {
      const r = await call(sys.api, method, path, userId ? { 'x-userid': userId } : {});
      if (r.status < 200 || r.status >= 300)
        throw Object.assign(new Error(`status ${r.status}`), { status: r.status, response: { body: r.body } });
      return r.body;
    },
    getUserId() {
      return this.request('/users/newId');
    },
    getStremId() {
      return this.request('/streams/newId');
    },
    activateStream({ userId, streamId }: { userId: string; streamId: string }) {
      return this.request(`/streams/${streamId}/activate`, 'PUT', userId);
    },
    deactivateStream({ userId, streamId }: { userId: string; streamId: string }) {
      return this.request(`/streams/${streamId}/deactivate`, 'PUT', userId);
    },
  };

  it('happy path: a new user activates three streams and deactivates them', async () => {
    const { userId } = await client.getUserId();
    const streamIds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { streamId } = await client.getStremId();
      streamIds.push(streamId);
      expect(await client.activateStream({ userId, streamId })).toMatchObject({ status: 'ok' });
    }
    for (const streamId of streamIds) expect(await client.deactivateStream({ userId, streamId })).toMatchObject({ status: 'ok' });
  });

  it('too many streams: the fourth activation is refused', async () => {
    const { userId } = await client.getUserId();
    for (let i = 0; i < 3; i++) await client.activateStream({ userId, streamId: (await client.getStremId()).streamId });
    const { streamId } = await client.getStremId();
    const err = await client.activateStream({ userId, streamId }).then(
      () => undefined,
      (e) => e,
    );
    expect(err?.status).toBe(409);
    expect(err.response.body).toMatchObject({ status: 'ko', error: 'too many streams', limit: 3 });
    expect(err.response.body.active).toHaveLength(3);
  });
});

describe('limits under concurrency', () => {
  it('1,000 concurrent activations of distinct streams for one user over two API processes: exactly N succeed', async () => {
    const userId = await newUser();
    const streams = await many(1000, (i) => newStream(i % 2 ? secondApi.api : sys.api));
    const results = await Promise.all(streams.map((s, i) => activate(i % 2 ? secondApi.api : sys.api, userId, s)));
    const statuses = results.reduce<Record<number, number>>((m, r) => ((m[r.status] = (m[r.status] ?? 0) + 1), m), {});
    expect(statuses, JSON.stringify(results.find((r) => r.status !== 200 && r.status !== 409))).toEqual({ 200: LIMIT, 409: 1000 - LIMIT });
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 409);
    expect(ok).toHaveLength(LIMIT);
    expect(refused).toHaveLength(1000 - LIMIT);
    const events = await sys.db.selectFrom('events').select('type').where('stream', '=', `viewer-${userId}`).execute();
    expect(events.filter((e) => e.type === 'StreamActivated')).toHaveLength(LIMIT);
    expect(events.filter((e) => e.type === 'ActivationRejected')).toHaveLength(1000 - LIMIT);
  }, 120_000);

  it('100 users racing at once: none over their limit', async () => {
    const users = await many(100, () => newUser());
    const streams = await many(8, () => newStream());
    const results = await Promise.all(
      users.flatMap((u, i) => streams.map((s, j) => activate((i + j) % 2 ? secondApi.api : sys.api, u, s).then((r) => ({ u, r })))),
    );
    for (const u of users) expect(results.filter((x) => x.u === u && x.r.status === 200)).toHaveLength(LIMIT);
    expect(results.filter((x) => x.r.status !== 200 && x.r.status !== 409).map((x) => x.r)).toEqual([]);
  }, 120_000);

  it('activating an already active stream counts once; deactivating a stream that is not active changes nothing', async () => {
    const userId = await newUser();
    const [a, b] = [await newStream(), await newStream()];
    await activate(sys.api, userId, a);
    const again = await activate(secondApi.api, userId, a, 'POST');
    expect(again).toEqual({ status: 200, body: { status: 'ok', active: [a], limit: LIMIT } });
    const before = await sys.db.selectFrom('events').select('version').where('stream', '=', `viewer-${userId}`).execute();
    const noop = await deactivate(sys.api, userId, b);
    expect(noop).toEqual({ status: 200, body: { status: 'ok', active: [a], limit: LIMIT } });
    const after = await sys.db.selectFrom('events').select('version').where('stream', '=', `viewer-${userId}`).execute();
    expect(after).toHaveLength(before.length);
  });

  it('per-user limits are set by an admin only', async () => {
    const userId = await newUser();
    const none = await call(sys.api, 'PUT', `/v1/admin/users/${userId}/limit`, {}, { limit: 1 });
    expect(none.status).toBe(401);
    const wrong = await call(sys.api, 'PUT', `/v1/admin/users/${userId}/limit`, { authorization: 'Bearer nope' }, { limit: 1 });
    expect(wrong.status).toBe(401);
    const set = await call(sys.api, 'PUT', `/v1/admin/users/${userId}/limit`, { authorization: 'Bearer test-admin-token' }, { limit: 1 });
    expect(set).toEqual({ status: 200, body: { userId, limit: 1 } });
    expect((await activate(sys.api, userId, await newStream())).status).toBe(200);
    const second = await activate(secondApi.api, userId, await newStream());
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ limit: 1 });
  });
});

describe('leases', () => {
  it('an expired lease frees its slot and is recorded as StreamDeactivated {reason: expired}', async () => {
    const short = await System.create({ STREAM_LIMIT: '2', STREAM_LEASE_TTL_MS: '1500' });
    try {
      await Promise.all([short.start('api'), short.start('projector'), short.start('relay')]);
      const userId = await newUser(short.api);
      const [a, b, c] = [await newStream(short.api), await newStream(short.api), await newStream(short.api)];
      expect((await activate(short.api, userId, a)).status).toBe(200);
      expect((await activate(short.api, userId, b)).status).toBe(200);
      expect((await activate(short.api, userId, c)).status).toBe(409);
      // b's player keeps renewing (and c's, once it plays) until the test ends; a's player crashed.
      const playing = [b];
      const renew = setInterval(() => {
        for (const s of playing) void call(short.api, 'PATCH', `/streams/${s}/heartbeat`, { 'x-userid': userId });
      }, 400);
      try {
        await waitFor('a slot to free up', async () => (await activate(short.api, userId, c)).status === 200, 10_000, 200);
        playing.push(c);
        const expired = await waitFor('the expiry event', async () => {
          const rows = await short.db
            .selectFrom('events')
            .select(['type', 'data'])
            .where('stream', '=', `viewer-${userId}`)
            .where('type', '=', 'StreamDeactivated')
            .execute();
          return rows.length > 0 && rows;
        });
        const decoded = expired.map((r) => short.log.codec.decode(r.data).data);
        expect(decoded).toEqual([expect.objectContaining({ streamId: a, reason: 'expired' })]);
        let seen: unknown;
        await waitFor('read model', async () => {
          const r = await call(short.api, 'GET', `/v1/users/${userId}/streams`, { 'x-userid': userId });
          seen = r;
          return (
            r.status === 200 &&
            r.body.active
              .map((s: { streamId: string }) => s.streamId)
              .sort()
              .join() === [b, c].sort().join()
          );
        }).catch((e: Error) => {
          throw new Error(`${e.message}; last answer ${JSON.stringify(seen)}; a=${a} b=${b} c=${c}`);
        });
        expect((await call(short.api, 'PATCH', `/streams/${a}/heartbeat`, { 'x-userid': userId })).status).toBe(409);
      } finally {
        clearInterval(renew);
      }
    } finally {
      await short.stop();
    }
  }, 60_000);
});

describe('the streams read model', () => {
  // Its reader hands every partition's batch of a fetch at once, applied in one transaction: a row
  // that cannot be written must not hold back the users of the other partitions.
  it('a lease that cannot be written holds back its own partition only, and is written once it can be', async () => {
    const users = await many(24, () => newUser());
    const streams = await many(24, () => newStream());
    const partitionOf = (u: string) => partitionFor(u, TOPICS.streams.partitions);
    const bad = users[0]!;
    const others = users.filter((u) => partitionOf(u) !== partitionOf(bad));
    expect(new Set(others.map(partitionOf)).size, 'users on several other partitions').toBeGreaterThan(1);
    const streamsOf = (u: string) => call(sys.api, 'GET', `/v1/users/${u}/streams`, { 'x-userid': u });
    const shown = async (u: string) => {
      const r = await streamsOf(u);
      expect(r.status).toBe(200);
      return r.body.active.map((a: { streamId: string }) => a.streamId) as string[];
    };
    // Every user known to the read model first: a refused batch that also held a user's issuing
    // would leave that user unknown (404), not without leases.
    await waitFor('every user in the read model', async () => {
      for (const u of users) if ((await streamsOf(u)).status !== 200) return false;
      return true;
    });
    // Broken from outside for one user, as a bug in the projection or a bad row would be.
    await sql`CREATE TABLE public.refused_users (user_id text PRIMARY KEY)`.execute(sys.db);
    await sql`INSERT INTO public.refused_users VALUES (${bad})`.execute(sys.db);
    await sql`CREATE FUNCTION public.refuse_lease() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN
                IF EXISTS (SELECT 1 FROM public.refused_users WHERE user_id = NEW.user_id) THEN RAISE EXCEPTION 'broken (test)'; END IF;
                RETURN NEW;
              END $$`.execute(sys.db);
    await sql`CREATE TRIGGER refuse_lease BEFORE INSERT OR UPDATE ON streams_v1.viewer_leases
              FOR EACH ROW EXECUTE FUNCTION public.refuse_lease()`.execute(sys.db);
    try {
      const saidBefore = sys.said('projector').length;
      /** The projector's log lines since, that say `what`. */
      const saidSince = <T>(what: string) =>
        sys
          .said('projector')
          .slice(saidBefore)
          .split('\n')
          .filter((l) => l.includes(what))
          .map((l) => JSON.parse(l) as T);
      /** The partitions the projector has said a batch failed in since. */
      const failedIn = () => saidSince<{ partition: number }>('batch handler failed').map((l) => l.partition);
      const answers = await Promise.all(users.map((u, i) => activate(sys.api, u, streams[i]!)));
      expect(answers.map((a) => a.status)).toEqual(users.map(() => 200));
      await waitFor('every user of the other partitions in the read model', async () => {
        for (const [i, u] of users.entries()) if (others.includes(u) && !(await shown(u)).includes(streams[i]!)) return false;
        return true;
      });
      await waitFor('the refused row tried', async () => failedIn().length > 0);
      expect(await shown(bad), 'the refused lease is not there').toEqual([]);
      expect(new Set(failedIn()), 'failures said of its partition only').toEqual(new Set([partitionOf(bad)]));
      // A fetch that carries the refused lease with other partitions' records is tried joined
      // first: that attempt's failure is said once, with the partitions it held, before each goes
      // alone. The first fetch may have carried the refused lease alone; leases of other
      // partitions meet its retries in later ones.
      await waitFor('a joined attempt with the refused partition', async () => {
        const [u, s] = [await newUser(), await newStream()];
        if (partitionOf(u) !== partitionOf(bad)) await activate(sys.api, u, s);
        return saidSince('joined batches failed').length > 0;
      });
      const joined = saidSince<{ partitions: string[] }>('joined batches failed').map((l) => l.partitions);
      expect(joined.length, 'the joined attempt said').toBeGreaterThan(0);
      for (const held of joined) expect(held.length, 'a joined attempt holds several partitions').toBeGreaterThan(1);
      expect(joined.flat(), 'the refused partition among them').toContain(`streams/${partitionOf(bad)}`);
    } finally {
      await sql`DROP TRIGGER refuse_lease ON streams_v1.viewer_leases`.execute(sys.db);
    }
    await waitFor('every user in the read model once the row can be written', async () => {
      for (const [i, u] of users.entries()) if (!(await shown(u)).includes(streams[i]!)) return false;
      return true;
    });
  }, 60_000);
});

describe("the user's live topic", () => {
  it('pushes a user their own stream events, and nobody else', async () => {
    const userId = await newUser();
    const [a, b] = [await newStream(), await newStream()];
    const mine = await LiveClient.connect(sys.live, { 'x-userid': userId });
    const other = await LiveClient.connect(sys.live, { 'x-userid': await newUser() });
    try {
      mine.subscribe(`user:${userId}`);
      other.subscribe(`user:${userId}`);
      expect(await mine.waitFor('subscribed', `user:${userId}`)).toMatchObject({ recovered: false });
      expect(await other.waitFor('error')).toMatchObject({ code: 'forbidden', channel: `user:${userId}` });
      await activate(sys.api, userId, a);
      await activate(secondApi.api, userId, b);
      await deactivate(sys.api, userId, a);
      const events = await waitFor('three events', () => {
        // Stream events only: the user's UserIdIssued may also arrive, relayed just after the subscribe.
        const got = mine.messages.filter((m) => m.type === 'event' && m.event.startsWith('Stream'));
        return got.length >= 3 && got;
      });
      expect(events.map((e) => [e.event, e.data.streamId])).toEqual([
        ['StreamActivated', a],
        ['StreamActivated', b],
        ['StreamDeactivated', a],
      ]);
      expect(events[2]).toMatchObject({
        channel: `user:${userId}`,
        position: expect.stringMatching(/^\d+:\d+$/),
        data: { userId, reason: 'stopped' },
      });
      // Sent to every subscriber at once: had other been let in, its copy would be in before this marker.
      await other.barrier();
      expect(other.messages.filter((m) => m.type === 'event')).toEqual([]);
    } finally {
      mine.close();
      other.close();
    }
  });
});

describe('outages', () => {
  it('answers 503 within a second while Postgres is unreachable, then recovers on its own', async () => {
    const pgUrl = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/castlog_test');
    const proxy = await TcpProxy.start({ host: pgUrl.hostname, port: Number(pgUrl.port || 5432) });
    const cut = await System.create({});
    const viaProxy = new URL(cut.env.DATABASE_URL!);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    cut.env.DATABASE_URL = viaProxy.toString();
    try {
      await cut.start('api');
      const userId = await newUser(cut.api);
      const streamId = await newStream(cut.api);
      await proxy.down();
      for (const path of [`/streams/${streamId}/activate`, `/streams/${streamId}/deactivate`]) {
        const t0 = performance.now();
        const r = await call(cut.api, 'PATCH', path, { 'x-userid': userId });
        expect(performance.now() - t0).toBeLessThan(1000);
        expect(r).toEqual({ status: 503, body: { status: 'ko', error: 'Service Unavailable' } });
      }
      const t0 = performance.now();
      const fresh = await call(cut.api, 'GET', '/users/newId');
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(fresh.status).toBe(503);
      expect((await call(cut.api, 'GET', '/readyz')).status).toBe(503);
      // Nothing half-done: the user has no activation.
      expect(await cut.db.selectFrom('events').select('type').where('stream', '=', `viewer-${userId}`).execute()).toEqual([
        { type: 'UserIdIssued' },
      ]);

      await proxy.up();
      const back = await waitFor(
        'service to resume',
        async () => {
          const r = await activate(cut.api, userId, streamId);
          return r.status === 200 && r;
        },
        15_000,
        200,
      );
      expect(back.body).toMatchObject({ status: 'ok', active: [streamId] });
    } catch (e) {
      console.error(cut.said('api'));
      throw e;
    } finally {
      await proxy.down();
      await cut.stop();
    }
  }, 60_000);

  it('the relay killed mid-run and restarted: the streams topic holds every event, in order per user', async () => {
    const users = await Promise.all(Array.from({ length: 20 }, () => newUser()));
    const streams = await Promise.all(Array.from({ length: 5 }, () => newStream()));
    let running = true;
    const load = (async () => {
      let i = 0;
      while (running) {
        const u = users[i % users.length]!;
        const s = streams[(i * 7) % streams.length]!;
        await (i % 3 === 2 ? deactivate(secondApi.api, u, s) : activate(i % 2 ? sys.api : secondApi.api, u, s));
        i++;
      }
    })();
    // Each kill lands in a running load, and events are stored while the relay is down.
    const storedCount = () => sys.eventCount();
    const moreStored = async (what: string, n: number) => {
      const from = await storedCount();
      await waitFor(what, async () => (await storedCount()) >= from + n, 30_000, 50);
    };
    // What every relay said, and when each was killed and started, for a failure to show. The
    // relays started here log at info (pino's times, "relay active"), so a record's producer
    // timestamp places it in one relay's life.
    const relaysSaid: string[] = [];
    const timeline: string[] = [];
    for (let k = 0; k < 2; k++) {
      await moreStored('the load to run', 50);
      timeline.push(`kill ${Date.now()}`);
      await sys.kill('relay');
      timeline.push(`killed ${Date.now()}`);
      relaysSaid.push(...(sys.output.get('relay') ?? []));
      await moreStored('events stored while the relay is down', 20);
      timeline.push(`start ${Date.now()}`);
      await sys.start('relay', { LOG_LEVEL: 'info' });
      timeline.push(`started ${Date.now()}`);
    }
    running = false;
    await load;

    const stored = await sys.db.selectFrom('events').select(['stream', 'version']).execute();
    const seen = new Map<string, number[]>();
    const offsets = new Map<string, string[]>(); // partition:offset@timestamp of each, for the failure message
    let records = 0;
    const consumer = await sys.log.consume({
      groupId: `verify-${Date.now()}`,
      topics: ['streams'],
      startAt: async () => 0,
      onBatch: async (b) => {
        for (const r of b.records) {
          records++;
          const list = seen.get(r.meta.stream!) ?? [];
          list.push(r.meta.streamVersion!);
          seen.set(r.meta.stream!, list);
          offsets.set(r.meta.stream!, [...(offsets.get(r.meta.stream!) ?? []), `${r.partition}:${r.offset}@${r.timestamp}`]);
        }
      },
    });
    try {
      await waitFor('every stored event on Kafka', () => stored.every((e) => seen.get(e.stream)?.includes(e.version)), 60_000, 200);
    } finally {
      await consumer.stop();
    }
    expect(records).toBeGreaterThanOrEqual(stored.length);
    for (const [stream, versions] of seen) {
      // Repeats allowed; dropping them leaves 1, 2, 3... in order.
      const firsts = versions.filter((v, i) => versions.indexOf(v) === i);
      if (firsts.every((v, i) => v === i + 1)) continue;
      // Say everything that could tell why (twice it was the relay ordering its batches by the
      // transaction id's text, where ids gain a digit: mended at stop 28).
      const rows = await sys.db
        .selectFrom('events')
        .select(['version', 'tx_id', 'position'])
        .where('stream', '=', stream)
        .orderBy('version')
        .execute();
      expect.fail(
        `${stream}: ${versions.join(',')} at ${offsets.get(stream)!.join(',')}\n` +
          `in the store (version tx/position): ${rows.map((r) => `${r.version} ${r.tx_id}/${r.position}`).join(', ')}\n` +
          `relays killed and started: ${timeline.join(', ')}\n` +
          `the relays said:\n${[...relaysSaid, ...(sys.output.get('relay') ?? [])].join('').slice(-12000)}`,
      );
    }
  }, 120_000);
});

describe('bad input', () => {
  const NIL_ID = '00000000-0000-4000-8000-000000000000';
  it('gets the documented status codes and changes nothing', async () => {
    const userId = await newUser();
    const streamId = await newStream();
    // This test's user and stream only: leases of earlier tests expire meanwhile, and their
    // StreamDeactivated {expired} events are not this test's doing.
    const count = async () =>
      (
        await sys.db
          .selectFrom('events')
          .select('position')
          .where(
            'stream',
            'in',
            [userId, streamId, NIL_ID].flatMap((id) => [viewerStream(id), streamIdStream(id)]),
          )
          .execute()
      ).length;
    const before = await count();
    const cases: [string, string, Record<string, string>, unknown, number][] = [
      ['PATCH', `/streams/${streamId}/activate`, {}, undefined, 400], // missing x-userid
      ['PATCH', `/streams/${streamId}/activate`, { 'x-userid': 'bob' }, undefined, 400], // not a UUID
      ['PATCH', `/streams/not-a-uuid/activate`, { 'x-userid': userId }, undefined, 400],
      ['PATCH', `/streams/${streamId}/activate`, { 'x-userid': '00000000-0000-4000-8000-000000000000' }, undefined, 404],
      ['PATCH', `/streams/00000000-0000-4000-8000-000000000000/activate`, { 'x-userid': userId }, undefined, 404],
      ['GET', `/streams/${streamId}/activate`, { 'x-userid': userId }, undefined, 405],
      ['DELETE', `/streams/${streamId}/deactivate`, { 'x-userid': userId }, undefined, 405],
      ['PUT', `/v1/admin/users/${userId}/limit`, { authorization: 'Bearer test-admin-token' }, '{"limit": 2', 400],
      ['PUT', `/v1/admin/users/${userId}/limit`, { authorization: 'Bearer test-admin-token' }, { limit: -1 }, 400],
      ['PUT', `/v1/admin/users/${userId}/limit`, { authorization: 'Bearer test-admin-token' }, { limit: 'three' }, 400],
      [
        'PUT',
        `/v1/admin/users/00000000-0000-4000-8000-000000000000/limit`,
        { authorization: 'Bearer test-admin-token' },
        { limit: 2 },
        404,
      ],
      ['GET', `/v1/users/${userId}/streams`, { 'x-userid': '00000000-0000-4000-8000-000000000000' }, undefined, 403],
    ];
    for (const [method, path, headers, body, status] of cases) {
      const r = await call(sys.api, method, path, headers, body);
      expect(r.status, `${method} ${path} ${JSON.stringify(headers)} ${JSON.stringify(body)}`).toBe(status);
      expect(r.body.error, `${method} ${path}`).toEqual(expect.any(String));
    }
    expect(await count()).toBe(before);
  });
});

describe('on a shared machine', () => {
  const nicenessOf = (s: System, apps: ('api' | 'fanout' | 'relay' | 'projector')[]) =>
    Object.fromEntries(
      apps.map((app) => {
        const child = s.running(app);
        // A process that ended is a failure of its own: say which, and what it said last.
        if (!child) throw new Error(`${app} has ended: ${s.said(app).slice(-3000)}`);
        return [app, getPriority(child.pid!)];
      }),
    );
  const base = getPriority(); // the processes start at the test's own niceness

  it.runIf(process.platform === 'linux')('every process keeps its priority unless BACKGROUND_NICE is set', () => {
    expect(nicenessOf(sys, ['api', 'fanout', 'relay', 'projector'])).toEqual({ api: base, fanout: base, relay: base, projector: base });
  });

  // Stopped after the file, not in the test: the contract check reads its api's answers after each test.
  let yielding: System | undefined;
  afterAll(() => yielding?.stop());
  it.runIf(process.platform === 'linux')('with BACKGROUND_NICE=10, the relay and projector yield the CPU; the api does not', async () => {
    yielding = await System.create({ BACKGROUND_NICE: '10' });
    await Promise.all([yielding.start('api'), yielding.start('relay'), yielding.start('projector')]);
    const nice = nicenessOf(yielding, ['api', 'relay', 'projector']);
    expect(nice).toEqual({ api: base, relay: Math.max(10, base), projector: Math.max(10, base) });
  });
});
