// Webhooks through the real notifier to a real HTTP receiver in this test: signed as documented
// (verified with the secret the alert API gave), retried after a 500 with growing pauses until the
// retry window closes, every attempt recorded and shown to the owner alone, sent again on
// redeliver; a receiver that does not answer is timed out; private, loopback and link-local
// destinations are refused unless allowed (127.0.0.1 is, here), at creation and at send time.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhookSignature, webhookSecret } from '../../infra/signing.ts';
import { attemptsOf, deliveryRow, insertDeliveries, matchOf, WebhookReceiver, type ReceivedHook } from '../support/deliveries.ts';
import { jsonOf, rawRequest } from '../support/http.ts';
import { SIGNING_SECRET, System, waitFor } from '../support/system.ts';
import { newUserId } from '../support/uploads.ts';

const RETRY_BASE_MS = 200;
const RETRY_WINDOW_MS = 4000;
const TIMEOUT_MS = 700;
let sys: System;
let receiver: WebhookReceiver;

beforeAll(async () => {
  receiver = await WebhookReceiver.start();
  sys = await System.create({
    WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
    DELIVERY_RETRY_BASE_MS: String(RETRY_BASE_MS),
    DELIVERY_RETRY_MAX_MS: '800',
    DELIVERY_RETRY_WINDOW_MS: String(RETRY_WINDOW_MS),
    WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
  });
  await Promise.all([sys.start('api'), sys.start('notifier')]);
}, 120_000);
afterAll(async () => {
  await sys?.stop();
  await receiver?.close();
});

const call = async (method: string, path: string, user?: string, body?: unknown) => {
  const headers = { ...(user ? { 'x-userid': user } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
  const r = await rawRequest(sys.apiPort, method, path, headers, body === undefined ? undefined : JSON.stringify(body));
  return { status: r.status, body: jsonOf(r), text: r.body };
};

async function createAlert(user: string, query: string, url: string): Promise<{ alertId: string; secret: string }> {
  const r = await call('POST', '/v1/alerts', user, { query, webhook: { url } });
  expect(r.status, r.text).toBe(201);
  return { alertId: r.body.alertId, secret: r.body.webhook.secret };
}

const settled = (id: number, states = ['sent', 'failed']) =>
  waitFor(
    `delivery ${id} to be ${states.join(' or ')}`,
    async () => {
      const row = await deliveryRow(sys.db, id);
      return states.includes(row.state) && row;
    },
    30_000,
  );

const verified = (secret: string, hook: ReceivedHook) =>
  verifyWebhookSignature(secret, hook.body, String(hook.headers['castlog-signature']), Math.floor(Date.now() / 1000));

describe('webhooks', () => {
  it("POSTs the payload signed with the alert's secret, as a receiver checks it", async () => {
    const user = newUserId();
    const { alertId, secret } = await createAlert(user, 'prime minister', receiver.url('/signed'));
    expect(secret).toBe(webhookSecret(SIGNING_SECRET, `alert:${alertId}`));
    const match = matchOf(alertId, 'prime minister', 'THE PRIME MINISTER SAID');
    const { webhook, cause } = await insertDeliveries(sys.db, user, match, { webhook: receiver.url('/signed') });
    const [hook] = await waitFor('the webhook', () => receiver.at('/signed').length === 1 && receiver.at('/signed'));

    expect(verified(secret, hook!)).toBe(true);
    expect(hook!.headers['castlog-signature']).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(hook!.headers['castlog-delivery']).toBe(String(webhook));
    expect(hook!.headers['castlog-event']).toBe('AlertMatched');
    expect(hook!.headers['content-type']).toBe('application/json');
    const body = JSON.parse(hook!.body);
    expect(Object.keys(body).slice(0, 2)).toEqual(['type', 'id']);
    expect(body).toEqual({
      type: 'AlertMatched',
      id: cause,
      alertId,
      data: {
        alertId,
        channel: 'bbc1',
        position: match.position,
        station: 'test-station',
        start: match.start,
        text: match.text,
        snippet: match.snippet,
      },
    });
    // A changed body, another alert's secret or an old timestamp do not pass.
    expect(verified(secret, { ...hook!, body: hook!.body.replace('PRIME', 'PRIME!') })).toBe(false);
    expect(verified(webhookSecret(SIGNING_SECRET, `alert:${randomUUID()}`), hook!)).toBe(false);
    expect(
      verifyWebhookSignature(secret, hook!.body, String(hook!.headers['castlog-signature']), Math.floor(Date.now() / 1000) + 3600),
    ).toBe(false);

    expect(await settled(webhook!)).toMatchObject({ state: 'sent', attempts: 1, last_error: null });
    expect(await attemptsOf(sys.db, webhook!)).toMatchObject([{ attempt: 1, status: 200, error: null }]);
  });

  it('tries again after a 500 with growing pauses, records each attempt, and shows them to the owner alone', async () => {
    const user = newUserId();
    const other = newUserId();
    const { alertId, secret } = await createAlert(user, 'weather', receiver.url('/flaky'));
    receiver.answer = (hook) => (hook.path === '/flaky' && receiver.at('/flaky').length <= 2 ? { status: 500 } : {});
    const { webhook, cause } = await insertDeliveries(sys.db, user, matchOf(alertId, 'weather', 'weather warning'), {
      webhook: receiver.url('/flaky'),
    });
    expect(await settled(webhook!)).toMatchObject({ state: 'sent', attempts: 3 });
    const hooks = receiver.at('/flaky');
    expect(hooks.map((h) => h.status)).toEqual([500, 500, 200]);
    // The same delivery each time, each signed afresh.
    for (const h of hooks) {
      expect(h.headers['castlog-delivery']).toBe(String(webhook));
      expect(JSON.parse(h.body).id).toBe(cause);
      expect(verified(secret, h)).toBe(true);
    }
    const attempts = await attemptsOf(sys.db, webhook!);
    expect(attempts.map((a) => [a.attempt, a.status])).toEqual([
      [1, 500],
      [2, 500],
      [3, 200],
    ]);
    expect(attempts[0]!.error).toMatch(/^HTTP 500/);
    // Exponential backoff: 200 ms, then 400 ms.
    expect(attempts[1]!.at_ms - attempts[0]!.at_ms).toBeGreaterThanOrEqual(RETRY_BASE_MS);
    expect(attempts[2]!.at_ms - attempts[1]!.at_ms).toBeGreaterThanOrEqual(2 * RETRY_BASE_MS);

    const mine = await call('GET', `/v1/deliveries?alertId=${alertId}`, user);
    expect(mine.status).toBe(200);
    expect(mine.body.items).toHaveLength(1);
    expect(mine.body.items[0]).toMatchObject({
      id: webhook,
      kind: 'webhook',
      cause,
      alertId,
      state: 'sent',
      attempts: 3,
      attemptLog: [
        { attempt: 1, status: 500 },
        { attempt: 2, status: 500 },
        { attempt: 3, status: 200, error: null },
      ],
    });
    expect((await call('GET', `/v1/deliveries/${webhook}`, user)).body).toMatchObject({ id: webhook, state: 'sent' });
    // Another user: nothing listed, and the delivery does not exist for them.
    expect((await call('GET', `/v1/deliveries?alertId=${alertId}`, other)).body.items).toEqual([]);
    expect((await call('GET', `/v1/deliveries/${webhook}`, other)).status).toBe(404);
    expect((await call('POST', `/v1/deliveries/${webhook}/redeliver`, other)).status).toBe(404);
    receiver.answer = () => ({});
  });

  it('gives up when the retry window is over; a redeliver sends it again, as the same delivery', async () => {
    const user = newUserId();
    const { alertId, secret } = await createAlert(user, 'storm', receiver.url('/down'));
    let up = false;
    receiver.answer = (hook) => (hook.path === '/down' && !up ? { status: 503 } : {});
    const { webhook, cause } = await insertDeliveries(sys.db, user, matchOf(alertId, 'storm', 'storm warning'), {
      webhook: receiver.url('/down'),
    });
    const failed = await settled(webhook!, ['failed']);
    expect(failed.last_error).toMatch(/^HTTP 503/);
    expect(failed.attempts).toBeGreaterThanOrEqual(3);
    const attempts = await attemptsOf(sys.db, webhook!);
    expect(attempts).toHaveLength(failed.attempts);
    // The last attempt was at the end of the window, not after it.
    expect(attempts.at(-1)!.at_ms - failed.created_at_ms).toBeLessThan(RETRY_WINDOW_MS + 1000);
    expect(attempts.at(-1)!.at_ms - failed.created_at_ms).toBeGreaterThanOrEqual(RETRY_WINDOW_MS - 50);

    up = true;
    const again = await call('POST', `/v1/deliveries/${webhook}/redeliver`, user);
    expect(again.status, again.text).toBe(202);
    expect(again.body).toMatchObject({ id: webhook, state: 'pending' });
    expect(await settled(webhook!, ['sent'])).toMatchObject({ attempts: failed.attempts + 1, last_error: null });
    const last = receiver.at('/down').at(-1)!;
    expect(last.status).toBe(200);
    expect(JSON.parse(last.body).id).toBe(cause);
    expect(verified(secret, last)).toBe(true);

    // One that is waiting already cannot be redelivered; ids that are not one are 404. Its receiver
    // refuses, so an attempt the notifier makes before the wait below is set leaves it waiting too.
    receiver.answer = (hook) => (hook.path === '/later' ? { status: 503 } : {});
    const waiting = await insertDeliveries(sys.db, user, matchOf(alertId, 'storm', 'storm, later'), { webhook: receiver.url('/later') });
    await sys.db
      .updateTable('deliveries')
      .set({ next_attempt_at_ms: Date.now() + 3600_000 })
      .where('id', '=', waiting.webhook!)
      .execute();
    expect((await call('POST', `/v1/deliveries/${waiting.webhook}/redeliver`, user)).status).toBe(409);
    for (const id of ['0', 'abc', '99999999999', '1e3', '-1']) {
      const r = await call('POST', `/v1/deliveries/${id}/redeliver`, user);
      expect(r.status, id).toBe(404);
      expect(r.body.field).toBe('id');
    }
    receiver.answer = () => ({});
  });

  it('ends an attempt the receiver does not answer in time', async () => {
    const user = newUserId();
    const { alertId } = await createAlert(user, 'harbour', receiver.url('/silent'));
    receiver.answer = (hook) => (hook.path === '/silent' ? { hang: true } : {});
    const { webhook } = await insertDeliveries(sys.db, user, matchOf(alertId, 'harbour', 'harbour closed'), {
      webhook: receiver.url('/silent'),
    });
    await waitFor('a timed-out attempt', async () => (await attemptsOf(sys.db, webhook!)).length > 0);
    const [first] = await attemptsOf(sys.db, webhook!);
    expect(first).toMatchObject({ status: null, error: `no complete answer within ${TIMEOUT_MS} ms` });
    expect(first!.duration_ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect((await deliveryRow(sys.db, webhook!)).state).not.toBe('sent');
    await sys.db.updateTable('deliveries').set({ retry_until_ms: 0 }).where('id', '=', webhook!).execute();
    receiver.answer = () => ({});
  });

  it('refuses private, loopback and link-local destinations unless allowed: at send time, nothing leaves', async () => {
    const user = newUserId();
    const { alertId } = await createAlert(user, 'strike', receiver.url('/ok'));
    const refused = [
      `http://localhost:${receiver.port}/private`, // loopback by name: only 127.0.0.1 itself is allowed here
      `http://[::1]:${receiver.port}/private`,
      'http://169.254.169.254/latest/meta-data',
      'http://10.0.0.1/hook',
      'http://[fd00::1]/hook',
    ];
    for (const url of refused) {
      const { webhook } = await insertDeliveries(sys.db, user, matchOf(alertId, 'strike', `strike ${url}`), { webhook: url });
      const row = await settled(webhook!);
      expect(row, url).toMatchObject({ state: 'failed', attempts: 1 });
      expect(row.last_error, url).toMatch(/^webhook\.url: .*not allowed/);
    }
    expect(receiver.at('/private')).toEqual([]);
  });

  it('refuses such a destination for an encode at once: 400 naming webhook.url, nothing decided', async () => {
    const user = newUserId();
    const uploadId = randomUUID();
    const events = await sys.eventCount();
    const cases: [unknown, string][] = [
      [{ url: 'http://10.1.2.3/hook' }, 'webhook.url'],
      [{ url: 'http://127.0.0.2/hook' }, 'webhook.url'],
      [{ url: 'http://[::ffff:169.254.169.254]/' }, 'webhook.url'],
      [{ url: 'ftp://hooks.example/' }, 'webhook.url'],
      [{ url: 'https://user:pw@hooks.example/' }, 'webhook.url'],
      [{ url: 42 }, 'webhook.url'],
      [{}, 'webhook.url'],
      [{ url: receiver.url(), secret: 'mine' }, 'webhook.secret'],
      ['https://hooks.example/', 'webhook'],
      [[receiver.url()], 'webhook'],
    ];
    for (const [webhook, field] of cases) {
      const r = await call('POST', '/v1/encodes', user, { uploadId, webhook });
      expect(r.status, JSON.stringify(webhook)).toBe(400);
      expect(r.body.field, JSON.stringify(webhook)).toBe(field);
    }
    // Allowed here: the request goes on to the upload, which does not exist.
    const allowed = await call('POST', '/v1/encodes', user, { uploadId, webhook: { url: receiver.url() } });
    expect(allowed.status).toBe(404);
    expect(allowed.body.field).toBe('uploadId');
    expect(await sys.eventCount()).toBe(events);
  });
});
