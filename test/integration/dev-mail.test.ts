// Development e-mail as `npm start` runs it without SMTP_URL: the notifier sends to the local SMTP
// server (apps/dev-mail), which keeps each message, and the api lists and shows them at /mail —
// with the unsubscribe link working from there. An api without DEV_MAIL_DIR has no /mail.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertDeliveries, matchOf } from '../support/deliveries.ts';
import { rawRequest } from '../support/http.ts';
import { System, freePort, waitFor } from '../support/system.ts';
import { newUserId } from '../support/uploads.ts';

let sys: System;
let other: System;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'castlog-dev-mail-'));
  const smtpPort = await freePort();
  sys = await System.create({ DEV_MAIL_DIR: dir });
  sys.env.PUBLIC_API_URL = sys.api;
  await Promise.all([
    sys.start('api'),
    sys.start('dev-mail', { DEV_MAIL_PORT: String(smtpPort) }),
    sys.start('notifier', { SMTP_URL: `smtp://127.0.0.1:${smtpPort}` }),
  ]);
  other = await System.sharing(sys); // an api as with SMTP_URL set: no DEV_MAIL_DIR
  await other.start('api');
}, 120_000);
afterAll(async () => {
  await other?.stop();
  await sys?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const get = async (path: string, s = sys, headers: Record<string, string> = {}) => rawRequest(s.apiPort, 'GET', path, headers);

describe('dev mail', () => {
  it('keeps what the notifier sends and shows it at /mail, the unsubscribe link working', async () => {
    const user = newUserId();
    const created = await rawRequest(
      sys.apiPort,
      'POST',
      '/v1/alerts',
      { 'x-userid': user, 'content-type': 'application/json' },
      JSON.stringify({ query: 'budget', email: 'newsroom@example.org' }),
    );
    expect(created.status, created.body).toBe(201);
    const { alertId } = JSON.parse(created.body);
    await insertDeliveries(sys.db, user, matchOf(alertId, 'budget', 'the budget is out'), { email: 'newsroom@example.org' });

    const list = await waitFor('the e-mail at /mail', async () => {
      const r = await get('/mail');
      return r.status === 200 && r.body.includes('newsroom@example.org') && r.body;
    });
    expect(list).toContain('Alert &quot;budget&quot;');
    const id = /href="\/mail\/(\d{13}-[0-9a-f]{8})"/.exec(list)![1]!;

    const page = await get(`/mail/${id}`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).toContain('newsroom@example.org');
    expect(page.body).toContain('the budget is out');
    expect(page.body).toContain(`<iframe sandbox src="/mail/${id}/html"`);
    expect(page.headers['content-security-policy']).toContain("frame-src 'self'");
    expect(page.body).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click');
    const link = /<a href="([^"]+\/v1\/unsubscribe\?token=[^"]+)">/.exec(page.body)![1]!.replace(/&amp;/g, '&');

    // The message's own HTML: its snippet marked, and nothing it holds may run or load.
    const html = await get(`/mail/${id}/html`);
    expect(html.body).toContain('<mark>budget</mark>');
    expect(html.headers['content-security-policy']).toMatch(/^sandbox; default-src 'none'/);
    const raw = await get(`/mail/${id}/raw`);
    expect(raw.body).toContain('List-Unsubscribe-Post: List-Unsubscribe=One-Click');

    // The link as a reader follows it from the page: a button, then e-mails stopped.
    const url = new URL(link);
    const target = `${url.pathname}${url.search}`;
    const confirm = await get(target, sys, { accept: 'text/html' });
    expect(confirm.status).toBe(200);
    expect(confirm.body).toContain('Stop e-mails from this alert');
    const stop = await rawRequest(
      sys.apiPort,
      'POST',
      target,
      { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
      'List-Unsubscribe=One-Click',
    );
    expect(stop.status).toBe(200);
    expect((await sys.storedEvents(`alerts-${user}`)).map((e) => e.type)).toEqual(['AlertCreated', 'AlertEmailStopped']);
  });

  it('answers 404 for what is not a kept message', async () => {
    for (const path of ['/mail/nope', '/mail/1234567890123-00000000', '/mail/..%2F..%2Fetc%2Fpasswd', '/mail/1234567890123-0000000g/raw']) {
      const r = await get(path);
      expect(r.status, path).toBe(404);
    }
  });

  it('is not there without DEV_MAIL_DIR', async () => {
    expect((await get('/mail', other)).status).toBe(404);
  });
});
