// Keyword alerts end to end: a user creates an alert, a station airs captions, the matcher records
// each match once (a phrase may span rollup captions), publishes it as AlertMatched, and the
// owner pages through the history. Another user sees nothing of it; bad input is a 400 naming the
// field; a matcher killed mid-stream neither loses nor doubles a match.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonOf, rawRequest } from '../support/http.ts';
import { LiveClient, System, fragment, metricValue, readTopic, waitFor } from '../support/system.ts';
import { newUserId } from '../support/uploads.ts';

let sys: System;
let key: string;
const owner = newUserId();
const other = newUserId();
let matcherPort = 0;

beforeAll(async () => {
  sys = await System.create({ ALERT_MAX_PER_USER: '5', SIGNING_SECRET: 'a-signing-secret-of-at-least-32-bytes-long' });
  await Promise.all([sys.start('api'), sys.start('relay'), sys.start('fanout')]);
  matcherPort = await startMatcher();
  key = await sys.stationKey('alerts-station');
}, 120_000);
afterAll(() => sys?.stop());

async function startMatcher(): Promise<number> {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  await sys.start('matcher', { MATCHER_PORT: String(port) });
  return port;
}

const call = async (method: string, path: string, user: string, body?: unknown) => {
  const headers = { 'x-userid': user, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
  const r = await rawRequest(sys.apiPort, method, path, headers, body === undefined ? undefined : JSON.stringify(body));
  return { status: r.status, body: jsonOf(r) };
};

/** Creates an alert and waits until the matcher holds it. */
async function createAlert(user: string, body: unknown): Promise<string> {
  const before = (await metricValue(matcherPort, 'castlog_matcher_alerts')) ?? 0;
  const r = await call('POST', '/v1/alerts', user, body);
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  await waitFor('the matcher to hold the alert', async () => ((await metricValue(matcherPort, 'castlog_matcher_alerts')) ?? 0) > before);
  return r.body.alertId;
}

const matchesOf = async (alertId: string, user = owner) =>
  (await call('GET', `/v1/alerts/${alertId}/matches?limit=100`, user)).body.items as any[];

describe('an alert', () => {
  it('hears about every caption search would find, and a phrase split over rollup captions', async () => {
    const alertId = await createAlert(owner, { query: '"prime minister"', channels: ['alert.bbc1'], lang: 'en' });
    const sent = await sys.postNdjson(
      'alert.bbc1',
      key,
      [
        fragment(1, 'Good evening.'),
        fragment(2, 'THE PRIME'), // the phrase begins here …
        fragment(3, 'MINISTER SAID TODAY'), // … and ends here: a match
        fragment(3, 'MINISTER SAID TODAY'), // a station's repeat: dropped, as every reader drops it
        fragment(4, 'The Prime Minister resigned.'), // a match on its own
        fragment(5, 'ministers and primes'), // the words, but not the phrase
      ]
        .map((f) => JSON.stringify(f))
        .join('\n'),
    );
    await sys.postJson('alert.other', key, fragment(1, 'the prime minister elsewhere')); // another channel
    const positions = sent.lines.map((l) => l.position);
    const items = await waitFor('two matches', async () => ((await matchesOf(alertId)).length >= 2 ? matchesOf(alertId) : undefined));
    expect(items.map((m) => m.position).sort()).toEqual([positions[2], positions[4]].sort());
    const across = items.find((m) => m.position === positions[2]);
    expect(across).toMatchObject({ channel: 'alert.bbc1', station: 'alerts-station', text: 'MINISTER SAID TODAY' });
    expect(across.snippet).toMatch(/<mark>PRIME<\/mark>.*<mark>MINISTER<\/mark>/);
    // Published once each as AlertMatched.
    const topic = await readTopic(sys.log, 'alerts');
    const published = await waitFor('AlertMatched events', () => {
      const m = topic.records.filter((r) => r.event.type === 'AlertMatched' && r.key === alertId);
      return m.length >= 2 && m;
    });
    await topic.stop();
    expect(published.map((r) => (r.event.data as { position: string }).position).sort()).toEqual([positions[2], positions[4]].sort());
  });

  it("reaches the owner's live channel at once as AlertMatched, once per caption, and nobody else's", async () => {
    const mine = await LiveClient.connect(sys.live, { 'x-userid': owner });
    const theirs = await LiveClient.connect(sys.live, { 'x-userid': other });
    try {
      mine.subscribe(`user:${owner}`);
      theirs.subscribe(`user:${other}`);
      await Promise.all([mine.waitFor('subscribed', `user:${owner}`), theirs.waitFor('subscribed', `user:${other}`)]);
      const alertId = await createAlert(owner, { query: 'harbour bridge', channels: ['alert.live'] });
      const sent = await sys.postJson('alert.live', key, [fragment(1, 'The harbour bridge reopened.'), fragment(2, 'Nothing to see.')]);
      expect(sent.status).toBe(200);
      const pushed = await waitFor('the match on the live socket', () => {
        const m = mine.messages.filter((x) => x.type === 'event' && x.event === 'AlertMatched' && x.data.alertId === alertId);
        return m.length > 0 && m;
      });
      expect(pushed).toHaveLength(1);
      expect(pushed[0]).toMatchObject({
        channel: `user:${owner}`,
        data: {
          alertId,
          channel: 'alert.live',
          position: sent.body.accepted[0].position,
          station: 'alerts-station',
          text: 'The harbour bridge reopened.',
          snippet: expect.stringMatching(/<mark>harbour<\/mark> <mark>bridge<\/mark>/),
        },
      });
      // The history says the same, and the other user heard nothing of it.
      expect((await matchesOf(alertId)).map((m) => m.position)).toEqual([sent.body.accepted[0].position]);
      expect(theirs.messages.filter((x) => x.event === 'AlertMatched')).toEqual([]);
    } finally {
      mine.close();
      theirs.close();
    }
  });

  it('is the owner’s only: another user gets 404 for it, its matches, and its deletion', async () => {
    const alertId = await createAlert(owner, { query: 'weather' });
    for (const [method, path] of [
      ['GET', `/v1/alerts/${alertId}`],
      ['GET', `/v1/alerts/${alertId}/matches`],
      ['DELETE', `/v1/alerts/${alertId}`],
    ] as const) {
      const r = await call(method, path, other);
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.body.field).toBe('alertId');
    }
    expect((await call('GET', '/v1/alerts', other)).body.alerts).toEqual([]);
    expect((await call('GET', `/v1/alerts/${alertId}`, owner)).body).toMatchObject({
      alertId,
      query: 'weather',
      channels: [],
      email: null,
      webhook: null,
    });
  });

  it('deleted, matches nothing more', async () => {
    const alertId = await createAlert(owner, { query: 'unicorn' });
    await sys.postJson('alert.del', key, fragment(1, 'a unicorn'));
    await waitFor('the first match', async () => (await matchesOf(alertId)).length === 1);
    const before = (await metricValue(matcherPort, 'castlog_matcher_alerts'))!;
    expect((await call('DELETE', `/v1/alerts/${alertId}`, owner)).status).toBe(204);
    await waitFor('the matcher to drop it', async () => (await metricValue(matcherPort, 'castlog_matcher_alerts'))! < before);
    // A marker alert proves the caption after the deletion was matched against what the matcher holds.
    const marker = await createAlert(owner, { query: 'marker' });
    await sys.postJson('alert.del', key, [fragment(2, 'another unicorn marker')]);
    await waitFor('the marker match', async () => (await matchesOf(marker)).length === 1);
    expect((await call('GET', `/v1/alerts/${alertId}`, owner)).status).toBe(404);
  });
});

describe('bad input', () => {
  it.each([
    [{}, 'query'],
    [{ query: '' }, 'query'],
    [{ query: '-only -negations' }, 'query'],
    [{ query: '&&&|!:*' }, 'query'],
    [{ query: 'x'.repeat(300) }, 'query'],
    [{ query: 'news', channels: 'bbc1' }, 'channels'],
    [{ query: 'news', channels: ['Bad Channel!'] }, 'channels[0]'],
    [{ query: 'news', lang: 'x'.repeat(40) }, 'lang'],
    [{ query: 'news', email: 'not-an-address' }, 'email'],
    [{ query: 'news', webhook: { url: 'ftp://example.org/x' } }, 'webhook.url'],
    [{ query: 'news', webhook: { url: 'https://user:pw@example.org/' } }, 'webhook.url'],
    [{ query: 'news', webhook: 'https://example.org/' }, 'webhook'],
    // Not a destination: this machine, private networks, the cloud's metadata service.
    [{ query: 'news', webhook: { url: 'http://127.0.0.1:8080/v1/admin/projections' } }, 'webhook.url'],
    [{ query: 'news', webhook: { url: 'http://169.254.169.254/latest/meta-data/' } }, 'webhook.url'],
    [{ query: 'news', webhook: { url: 'http://10.1.2.3/hook' } }, 'webhook.url'],
    [{ query: 'news', webhook: { url: 'http://[::1]/hook' } }, 'webhook.url'],
    [{ query: 'news', webhook: { url: 'http://[::ffff:127.0.0.1]/hook' } }, 'webhook.url'],
    [{ query: 'news', webhook: { url: 'http://localhost/hook' } }, 'webhook.url'],
    [{ query: 'news', colour: 'red' }, 'colour'],
  ])('%j is a 400 naming %s, and nothing is created', async (body, field) => {
    const user = newUserId();
    const r = await call('POST', '/v1/alerts', user, body);
    expect(r.status, JSON.stringify(r.body)).toBe(400);
    expect(r.body.field).toBe(field);
    expect((await call('GET', '/v1/alerts', user)).body.alerts).toEqual([]);
  });

  it('past ALERT_MAX_PER_USER alerts, another is a 409', async () => {
    const user = newUserId();
    for (let i = 0; i < 5; i++) expect((await call('POST', '/v1/alerts', user, { query: `word${i}` })).status).toBe(201);
    const r = await call('POST', '/v1/alerts', user, { query: 'one too many' });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatch(/at most 5 alerts/);
  });
});

describe('the matcher killed mid-stream', () => {
  it('restarts where it was: every match recorded once, none lost', async () => {
    const alertId = await createAlert(owner, { query: 'bulletin', channels: ['alert.kill'] });
    const expected: string[] = [];
    let seq = 0;
    const send = async (n: number) => {
      for (let i = 0; i < n; i++) {
        seq++;
        const r = await sys.postJson('alert.kill', key, fragment(seq, seq % 3 === 0 ? `bulletin number ${seq}` : `filler ${seq}`));
        if (seq % 3 === 0) expected.push(r.body.accepted[0].position);
      }
    };
    await send(60);
    await sys.kill('matcher');
    await send(60);
    matcherPort = await startMatcher();
    await send(30);
    const items = await waitFor(
      'every match',
      async () => {
        const m = await matchesOf(alertId);
        return m.length >= expected.length && m;
      },
      60_000,
    );
    expect(items.map((m) => m.position).sort()).toEqual([...expected].sort());
    expect(new Set(items.map((m) => m.position)).size).toBe(items.length);
  }, 120_000);
});
