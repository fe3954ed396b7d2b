// Two of every process on one Kafka and one Postgres, as a deployment runs them: two APIs, two
// fanouts, two projectors (sharing partitions), two relays (one active), two encode workers. Under
// steady traffic (stations, viewers, stream decisions, an upload and its encode), one copy of each
// kind is killed with SIGKILL in turn and started again. What must hold (ARCHITECTURE.md's
// invariants): nothing acknowledged lost or doubled, the stream limit held, the upload intact, the
// encode completed once, every subscriber's sequence exact.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../infra/retry.ts';
import { LiveClient, System, fragment, waitFor } from '../support/system.ts';
import { idOf, makeClip, sha256, tusUpload } from '../support/uploads.ts';

const KILLED = ['api', 'fanout', 'projector', 'relay', 'worker'] as const;
const CHANNELS = ['twice.a', 'twice.b', 'twice.c'];
const LIMIT = 2;

let dir: string;
let one: System;
let two: System;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'castlog-twice-'));
  const env = { STREAM_LIMIT: String(LIMIT), BLOB_DIR: join(dir, 'blobs') };
  one = await System.create(env);
  two = await System.sharing(one);
  Object.assign(two.env, env);
  for (const p of KILLED) {
    await one.start(p);
    await two.start(p);
  }
}, 600_000);

afterAll(async () => {
  await two?.stop();
  await one?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Sends to whichever API answers: a killed one's requests go to the other. */
async function toAnyApi<T>(send: (api: string) => Promise<T>, i: number): Promise<T> {
  const apis = [one.api, two.api];
  try {
    return await send(apis[i % 2]!);
  } catch {
    return send(apis[(i + 1) % 2]!);
  }
}

/** A viewer on one fanout that, when its fanout dies, resumes on the other from its last positions. */
class Viewer {
  seen = new Map<string, { seq: number; position: string }[]>(CHANNELS.map((c) => [c, []]));
  private client!: LiveClient;
  private done: LiveClient[] = [];
  resumes = 0;

  private constructor(private at: 0 | 1) {}

  static async on(at: 0 | 1): Promise<Viewer> {
    const v = new Viewer(at);
    await v.connect();
    return v;
  }

  private async connect(): Promise<void> {
    const url = [one.live, two.live][this.at]!;
    this.client = await LiveClient.connect(url);
    for (const c of CHANNELS) this.client.subscribe(c, this.seen.get(c)!.at(-1)?.position);
    for (const c of CHANNELS) await this.client.waitFor('subscribed', c);
  }

  /** What this viewer has been sent, across every connection it had. */
  captions(channel: string): { seq: number; position: string }[] {
    return [...this.done, this.client].flatMap((c) => c.captions(channel));
  }

  /** Called often: if the fanout closed the socket, keep what arrived and resume on the other. */
  async keepWatching(): Promise<void> {
    // One resume at a time: a second caller during connect() would keep the old socket twice.
    this.resuming ??= this.resume().finally(() => (this.resuming = undefined));
    return this.resuming;
  }

  private resuming: Promise<void> | undefined;

  private async resume(): Promise<void> {
    if (!this.client.closed) return;
    for (const c of CHANNELS) this.seen.set(c, this.captions(c));
    this.done.push(this.client);
    this.at = this.at === 0 ? 1 : 0;
    this.resumes++;
    await this.connect();
  }
}

describe('two of every process, one of each killed in turn under traffic', () => {
  it('loses and doubles nothing, holds the limit, keeps the upload, encodes once, and every viewer sees each fragment once', async () => {
    const key = await one.stationKey();
    const viewers = [await Viewer.on(0), await Viewer.on(0), await Viewer.on(1), await Viewer.on(1)];

    // Stations: one per channel, each fragment sent again (to either API) until acknowledged.
    const acked = new Map<string, Map<number, string>>(CHANNELS.map((c) => [c, new Map()]));
    let running = true;
    const statuses = new Map<number, number>();
    let lastProblem = '';
    const stations = CHANNELS.map(async (channel, c) => {
      let seq = 1;
      for (let i = c; running; i++) {
        const r = await toAnyApi(async (api) => {
          const res = await fetch(`${api}/v1/channels/${channel}/captions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
            body: JSON.stringify(fragment(seq)),
          });
          return { status: res.status, body: (await res.json()) as any };
        }, i).catch(() => ({ status: 0, body: undefined }));
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status !== 200) lastProblem = JSON.stringify(r.body);
        if (r.status === 200) for (const a of r.body.accepted) acked.get(channel)!.set(a.seq, a.position);
        if (r.status === 200) seq++;
        await sleep(30);
      }
    });

    // Viewers asking to watch: each user's decisions go to either API, one at a time.
    const users = await Promise.all(
      Array.from({ length: 6 }, async () => ((await (await fetch(`${one.api}/users/newId`)).json()) as { userId: string }).userId),
    );
    const streamIds = await Promise.all(
      Array.from({ length: 4 }, async () => ((await (await fetch(`${one.api}/streams/newId`)).json()) as { streamId: string }).streamId),
    );
    const decisions = users.map(async (user, u) => {
      for (let i = u; running; i++) {
        const stream = streamIds[(i * 3 + u) % streamIds.length]!;
        const op = i % 3 === 2 ? 'deactivate' : 'activate';
        await toAnyApi((api) => fetch(`${api}/streams/${stream}/${op}`, { method: 'PATCH', headers: { 'x-userid': user } }), i).catch(
          () => undefined,
        );
        await sleep(50);
      }
    });
    const watching = setInterval(() => viewers.forEach((v) => void v.keepWatching().catch(() => undefined)), 100);

    // An upload, and its encode, while processes die around them.
    const owner = users[0]!;
    const clip = join(dir, 'clip.mp4');
    await makeClip(clip, { seconds: 4, width: 320, height: 240, fps: 25 });
    const data = readFileSync(clip);
    const uploadId = idOf(await tusUpload(two.api, data, { userId: owner, filename: 'clip.mp4' }));
    const asked = await fetch(`${one.api}/v1/encodes`, {
      method: 'POST',
      headers: { 'x-userid': owner, 'content-type': 'application/json' },
      body: JSON.stringify({ uploadId, options: { preset: 'ultrafast', qp: 30 } }),
    });
    expect(asked.status).toBe(202);
    const { jobId } = (await asked.json()) as { jobId: string };

    const total = () => [...acked.values()].reduce((n, m) => n + m.size, 0);
    const progress = async (what: string, n = 10) => {
      const from = total();
      await waitFor(what, () => total() >= from + n, 180_000, 50).catch((err) => {
        throw new Error(`${err.message}; ingest answers: ${JSON.stringify([...statuses])}, last problem: ${lastProblem}`);
      });
    };
    try {
      for (const p of KILLED) {
        await progress(`traffic before ${p} is killed`);
        await one.kill(p);
        await progress(`traffic while one ${p} is down`);
        // A loaded machine may take longer than start()'s minute: the process goes on starting.
        await one
          .start(p)
          .catch(() =>
            waitFor(
              `${p} to answer /healthz`,
              async () => (await fetch(`http://127.0.0.1:${one.ports.get(p)}/healthz`).catch(() => undefined))?.ok,
              180_000,
              500,
            ),
          );
      }
      await progress('traffic after every kill');
    } finally {
      running = false;
      await Promise.all([...stations, ...decisions]);
    }

    // Every acknowledged fragment, once, in the read model and at every viewer, in order.
    for (const channel of CHANNELS) {
      const expected = [...acked.get(channel)!.keys()].sort((a, b) => a - b);
      expect(expected).toEqual(expected.map((_, i) => i + 1));
      await waitFor(`${channel} in the read model`, async () => (await one.fragments(channel)).length >= expected.length, 60_000, 250);
      expect(
        (await one.fragments(channel)).map((f) => f.seq),
        channel,
      ).toEqual(expected);
      for (const [i, v] of viewers.entries()) {
        await waitFor(
          `viewer ${i} to have ${channel}`,
          async () => (await v.keepWatching(), v.captions(channel).length >= expected.length),
        );
        expect(
          v.captions(channel).map((m) => m.seq),
          `viewer ${i}, ${channel}`,
        ).toEqual(expected);
      }
    }
    clearInterval(watching);
    // The viewers of the killed fanout resumed on the other.
    expect(viewers.slice(0, 2).every((v) => v.resumes >= 1)).toBe(true);

    // The limit held: replaying each user's decided events never shows more than LIMIT active.
    for (const user of users) {
      const active = new Set<string>();
      for (const e of await one.storedEvents(`viewer-${user}`)) {
        if (e.type === 'StreamActivated') active.add(e.data.streamId);
        if (e.type === 'StreamDeactivated') active.delete(e.data.streamId);
        expect(active.size, `${user} after ${e.type}`).toBeLessThanOrEqual(LIMIT);
      }
    }

    // The upload is the file sent, and its encode completed exactly once.
    const uploaded = (await one.storedEvents(`upload-${uploadId}`)).find((e) => e.type === 'UploadCompleted');
    expect(uploaded?.data).toMatchObject({ sha256: sha256(data), size: data.length });
    const job = await waitFor(
      'the encode to finish',
      async () => {
        const r = await fetch(`${two.api}/v1/encodes/${jobId}`, { headers: { 'x-userid': owner } });
        const b = (await r.json()) as { status: string };
        return (b.status === 'completed' || b.status === 'failed') && b;
      },
      120_000,
      250,
    );
    expect(job.status).toBe('completed');
    const events = await one.storedEvents(`encode-${jobId}`);
    expect(events.filter((e) => e.type === 'EncodeCompleted')).toHaveLength(1);
    viewers.forEach((v) => v.captions(CHANNELS[0]!)); // (viewers close with the systems)
  }, 900_000);
});
