// One alert the whole way, every part real: the api decides it, the relay publishes it, a station
// sends a caption through the ingest API, the matcher matches it, the fanout pushes AlertMatched on
// the owner's user channel, the notifier e-mails it through SMTP to the development mail server
// (apps/dev-mail, which keeps the message: parsed here, its one-click unsubscribe link followed)
// and POSTs the webhook to a receiver that answers 500 once — signed, and tried again.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simpleParser } from 'mailparser';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { listMail, readMail } from '../../infra/dev-mailbox.ts';
import { verifyWebhookSignature } from '../../infra/signing.ts';
import { WebhookReceiver } from '../support/deliveries.ts';
import { jsonOf, rawRequest } from '../support/http.ts';
import { LiveClient, System, fragment, freePort, metricValue, waitFor } from '../support/system.ts';
import { newUserId } from '../support/uploads.ts';

const CHANNEL = 'full-path.news';
let sys: System;
let receiver: WebhookReceiver;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'castlog-full-path-'));
  receiver = await WebhookReceiver.start();
  const smtpPort = await freePort();
  sys = await System.create({
    WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
    DELIVERY_RETRY_BASE_MS: '300',
    DELIVERY_RETRY_MAX_MS: '1000',
    DEV_MAIL_DIR: dir,
  });
  sys.env.PUBLIC_API_URL = sys.api; // the unsubscribe link points here
  // One after another: a loaded machine gives each its start-up minute.
  await sys.start('api');
  for (const p of ['relay', 'fanout', 'matcher'] as const) await sys.start(p);
  await sys.start('dev-mail', { DEV_MAIL_PORT: String(smtpPort) });
  await sys.start('notifier', { SMTP_URL: `smtp://127.0.0.1:${smtpPort}` });
}, 420_000);
afterAll(async () => {
  await sys?.stop();
  await receiver?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The header lines of a raw message, folded lines joined, by lower-case name. */
function rawHeader(raw: string, name: string): string | undefined {
  const head = raw.split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ');
  return new RegExp(`^${name}: (.*)$`, 'im').exec(head)?.[1]?.trim();
}

it('a caption sent by a station reaches the WebSocket, an SMTP mailbox and a webhook retried after a 500', async () => {
  const user = newUserId();
  const live = await LiveClient.connect(sys.live, { 'x-userid': user });
  try {
    live.subscribe(`user:${user}`);
    await live.waitFor('subscribed', `user:${user}`);

    const created = await rawRequest(
      sys.apiPort,
      'POST',
      '/v1/alerts',
      { 'x-userid': user, 'content-type': 'application/json' },
      JSON.stringify({
        query: '"harbour bridge"',
        channels: [CHANNEL],
        lang: 'en',
        email: 'desk@example.org',
        webhook: { url: receiver.url('/full') },
      }),
    );
    expect(created.status, created.body).toBe(201);
    const { alertId, webhook } = jsonOf(created);
    await waitFor(
      'the matcher to hold the alert',
      async () => ((await metricValue(sys.ports.get('matcher')!, 'castlog_matcher_alerts')) ?? 0) >= 1,
    );
    // The receiver is down for the first request.
    receiver.answer = (hook) => (receiver.at(hook.path).length === 1 ? { status: 500 } : {});

    const key = await sys.stationKey('full-path-station');
    const start = Date.now();
    const sent = await sys.postJson(CHANNEL, key, [
      { ...fragment(1, 'The harbour bridge is closed to traffic.', { lang: 'en' }), start, end: start + 900 },
    ]);
    expect(sent.status).toBe(200);
    const position = sent.body.accepted[0].position;
    const expected = {
      alertId,
      channel: CHANNEL,
      position,
      station: 'full-path-station',
      start,
      text: 'The harbour bridge is closed to traffic.',
    };

    // 1. The WebSocket: AlertMatched on the owner's channel.
    const [pushed] = await waitFor('AlertMatched on the user channel', () => {
      const m = live.messages.filter((x) => x.type === 'event' && x.event === 'AlertMatched');
      return m.length > 0 && m;
    });
    expect(pushed).toMatchObject({ channel: `user:${user}`, data: expected });
    expect(pushed.data.snippet).toMatch(/<mark>harbour<\/mark> <mark>bridge<\/mark>/);

    // 2. The e-mail, kept by the development SMTP server, parsed.
    const [kept] = await waitFor(
      'the e-mail in the dev mailbox',
      async () => {
        const all = await listMail(dir);
        return all.length > 0 && all;
      },
      60_000,
    );
    const raw = (await readMail(dir, kept!.id))!;
    const mail = await simpleParser(raw);
    expect(mail.to && !Array.isArray(mail.to) ? mail.to.value.map((a) => a.address) : []).toEqual(['desk@example.org']);
    expect(mail.subject).toContain('harbour bridge');
    expect(mail.text).toContain('The harbour bridge is closed to traffic.');
    expect(mail.html).toMatch(/<mark>harbour<\/mark>/);
    expect(rawHeader(raw.toString(), 'List-Unsubscribe-Post')).toBe('List-Unsubscribe=One-Click');
    const link = new URL(/^<([^>]+)>$/.exec(rawHeader(raw.toString(), 'List-Unsubscribe') ?? '')![1]!);
    expect(link.origin).toBe(sys.api);
    // The one-click link, as a mail client follows it (RFC 8058): e-mails stop.
    const stop = await rawRequest(
      sys.apiPort,
      'POST',
      `${link.pathname}${link.search}`,
      { 'content-type': 'application/x-www-form-urlencoded' },
      'List-Unsubscribe=One-Click',
    );
    expect(stop.status, stop.body).toBe(200);
    expect(jsonOf(stop)).toEqual({ alertId, emailStopped: true });
    const after = await rawRequest(sys.apiPort, 'GET', `/v1/alerts/${alertId}`, { 'x-userid': user });
    expect(jsonOf(after).email).toBeNull();

    // 3. The webhook: a 500, then the same delivery again, each attempt signed with the alert's secret.
    const hooks = await waitFor(
      'the webhook tried again and answered',
      () => receiver.at('/full').length >= 2 && receiver.answeredAt('/full'),
      60_000,
    );
    expect(hooks.map((h) => h.status)).toEqual([500, 200]);
    expect(hooks[1]!.at - hooks[0]!.at).toBeGreaterThanOrEqual(300);
    for (const h of hooks) {
      expect(verifyWebhookSignature(webhook.secret, h.body, String(h.headers['castlog-signature']), Math.floor(Date.now() / 1000))).toBe(
        true,
      );
      expect(h.headers['castlog-delivery']).toBe(hooks[0]!.headers['castlog-delivery']);
      expect(JSON.parse(h.body)).toMatchObject({ type: 'AlertMatched', alertId, data: expected });
    }
    // Each effect once: one push, one e-mail.
    expect(live.messages.filter((x) => x.event === 'AlertMatched')).toHaveLength(1);
    expect(await listMail(dir)).toHaveLength(1);
  } finally {
    live.close();
    receiver.answer = () => ({});
  }
}, 180_000);
