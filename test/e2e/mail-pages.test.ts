// The pages of alert e-mail in headless Chromium against the real api, dev mail and notifier: the
// e-mail at /mail (its HTML in a sandboxed frame), its unsubscribe link opened as a reader would,
// the button pressed — the alert's e-mails stopped — all within the pages' Content-Security-Policy.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertDeliveries, matchOf } from '../support/deliveries.ts';
import { rawRequest } from '../support/http.ts';
import { System, freePort, waitFor } from '../support/system.ts';
import { newUserId } from '../support/uploads.ts';
import { launchChromium, openPage } from './browser.ts';

let sys: System;
let browser: Browser;
let page: Page;
let problems: string[];
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'castlog-mail-pages-'));
  const smtpPort = await freePort();
  [browser, sys] = await Promise.all([launchChromium(), System.create({ DEV_MAIL_DIR: dir })]);
  sys.env.PUBLIC_API_URL = sys.api;
  await Promise.all([
    sys.start('api'),
    sys.start('dev-mail', { DEV_MAIL_PORT: String(smtpPort) }),
    sys.start('notifier', { SMTP_URL: `smtp://127.0.0.1:${smtpPort}` }),
  ]);
  ({ page, problems } = await openPage(browser, { viewport: { width: 1100, height: 900 } }));
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await sys?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('alert e-mail in the browser', () => {
  it('shows the e-mail at /mail, and its unsubscribe link stops the e-mails with one press', async () => {
    const user = newUserId();
    const created = await rawRequest(
      sys.apiPort,
      'POST',
      '/v1/alerts',
      { 'x-userid': user, 'content-type': 'application/json' },
      JSON.stringify({ query: 'harbour', email: 'desk@example.org' }),
    );
    const { alertId } = JSON.parse(created.body);
    await insertDeliveries(sys.db, user, matchOf(alertId, 'harbour', 'the harbour bridge reopened'), { email: 'desk@example.org' });

    await waitFor('the e-mail listed', async () => (await rawRequest(sys.apiPort, 'GET', '/mail')).body.includes('desk@example.org'));
    await page.goto(`${sys.api}/mail`);
    await page.getByRole('link', { name: /Alert "harbour"/ }).click();
    await page.getByRole('heading', { name: 'HTML' }).waitFor();
    const frame = page.frameLocator('iframe');
    await expect(frame.locator('mark').first().textContent()).resolves.toBe('harbour');

    await page.locator('a[href*="/v1/unsubscribe?token="]').first().click();
    await page.getByRole('heading', { name: 'Stop these e-mails?' }).waitFor();
    expect((await sys.storedEvents(`alerts-${user}`)).map((e) => e.type)).toEqual(['AlertCreated']);
    await page.getByRole('button', { name: 'Stop e-mails from this alert' }).click();
    await page.getByRole('heading', { name: 'E-mails stopped' }).waitFor();
    expect((await sys.storedEvents(`alerts-${user}`)).map((e) => e.type)).toEqual(['AlertCreated', 'AlertEmailStopped']);
    expect(problems).toEqual([]);
  });
});
