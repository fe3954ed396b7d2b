// The alerts page in headless Chromium against the real api, relay, projector, fanout and matcher:
// an alert is created after a preview of what it would have matched over the last day (search's
// answer), bad input is shown under the field it is about and creates nothing, a caption aired on
// the alert's channel appears at once as a match (over the page's user channel, announced to
// screen readers), and a deleted alert is gone, here and for the API.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { System, fragment, metricValue, waitFor } from '../support/system.ts';
import { launchChromium, openPage } from './browser.ts';

const CHANNEL = 'alerts-page.news';
let sys: System;
let browser: Browser;
let key: string;
let seq = 0;

/** Captions aired `agoMs` before now on a channel. */
const air = (channel: string, texts: string[], agoMs = 0) =>
  sys.postJson(
    channel,
    key,
    texts.map((text, i) => {
      const start = Date.now() - agoMs + i * 1000;
      return { ...fragment(++seq, text, { lang: 'en' }), start, end: start + 900 };
    }),
  );

beforeAll(async () => {
  [browser, sys] = await Promise.all([launchChromium(), System.create()]);
  await sys.start('api');
  // One after another: on a loaded machine, five processes starting at once may each miss the minute they get.
  for (const p of ['relay', 'projector', 'fanout', 'matcher'] as const) await sys.start(p);
  key = await sys.stationKey('alerts-page-station');
  await air(
    CHANNEL,
    ['The harbour bridge reopened this morning.', 'Ferries are back.', 'Queues on the harbour bridge tonight.'],
    3_600_000,
  );
  await air(CHANNEL, ['The harbour bridge, two days ago.'], 2 * 86_400_000); // older than a day: not in the preview
  await air('alerts-page.other', ['The harbour bridge, on another channel.'], 3_600_000);
  await waitFor('the captions in the read model', async () => (await sys.fragments(CHANNEL)).length === 4, 120_000);
}, 420_000);
afterAll(async () => {
  await browser?.close();
  await sys?.stop();
});

let page: Page;
let problems: string[];
const alertCount = () => metricValue(sys.ports.get('matcher')!, 'castlog_matcher_alerts');

it('creates an alert after previewing what it would have matched in the last 24 hours', async () => {
  ({ page, problems } = await openPage(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }));
  page.setDefaultTimeout(60_000); // a loaded machine: the page's first answers may be slow
  await page.goto(`${sys.api}/alerts`);
  await page.locator('[data-testid="alerts"][data-state="ready"]').waitFor({ state: 'attached' });
  expect(await page.getByTestId('alerts-empty').isVisible()).toBe(true);

  await page.getByLabel('Words to listen for').fill('harbour bridge');
  await page.getByLabel('Channels').fill(CHANNEL);
  await page.getByLabel('Language').fill('en');
  await page.getByLabel('E-mail').fill('desk@example.org');
  await page.getByTestId('preview-button').click();
  const preview = page.locator(`[data-testid="preview"][data-state="ready"]`);
  await preview.waitFor();
  // Search's answer for the same words, channel and language since a day ago, newest first.
  const hits = page.getByTestId('preview-hit');
  expect(await hits.count()).toBe(2);
  expect(await hits.first().locator('.snippet').textContent()).toBe('Queues on the harbour bridge tonight.');
  expect(await hits.first().locator('mark').allTextContents()).toEqual(['harbour', 'bridge']);
  expect(await page.getByTestId('preview-summary').textContent()).toBe('2 captions in the last 24 hours.');

  await page.getByTestId('create').click();
  await expect.poll(() => page.getByTestId('form-note').textContent()).toMatch(/^Alert created for “harbour bridge”\./);
  const alert = page.getByTestId('alert');
  expect(await alert.count()).toBe(1);
  expect(await alert.getByTestId('alert-query').textContent()).toBe('harbour bridge');
  expect(await alert.locator('dl').textContent()).toContain(CHANNEL);
  expect(await alert.locator('dl').textContent()).toContain('desk@example.org');
  expect(await page.getByTestId('alert-count').textContent()).toBe('1 alert');
  expect(await page.getByLabel('Words to listen for').inputValue(), 'the form is ready for another').toBe('');
  // The API holds it for this browser's user.
  const userId = await page.evaluate(() => localStorage.getItem('castlog.userId'));
  const mine = await (await fetch(`${sys.api}/v1/alerts`, { headers: { 'x-userid': userId! } })).json();
  expect(mine.alerts).toMatchObject([{ query: 'harbour bridge', channels: [CHANNEL], lang: 'en', email: 'desk@example.org' }]);
  expect(problems).toEqual([]);
}, 120_000);

it('shows a bad query, channel, address or URL under its field, and creates nothing', async () => {
  const failed = problems.length;
  const query = page.getByLabel('Words to listen for');
  await query.fill('-weather');
  await page.getByTestId('create').click();
  await expect
    .poll(() => page.getByTestId('query-error').textContent())
    .toBe('Add a word to listen for: “-word” only leaves captions out.');
  expect(await query.getAttribute('aria-invalid')).toBe('true');
  expect(await query.evaluate((e) => e === document.activeElement), 'focus goes to the field at fault').toBe(true);
  // The message is the field's description, so a screen reader says it with the field.
  expect(await query.getAttribute('aria-describedby')).toContain('query-error');
  for (const other of ['channels', 'lang', 'email', 'webhook'])
    expect(await page.getByTestId(`${other}-error`).textContent(), other).toBe('');

  await query.fill('storm');
  await page.getByLabel('Channels').fill(`${CHANNEL}, BBC One`);
  await page.getByTestId('create').click();
  await expect
    .poll(() => page.getByTestId('channels-error').textContent())
    .toBe('“BBC” is not a channel id: lowercase letters, digits, “.”, “_” and “-”, at most 64.');
  expect(await page.getByTestId('query-error').textContent(), 'the earlier problem is gone').toBe('');
  expect(await query.getAttribute('aria-invalid')).toBeNull();

  await page.getByLabel('Channels').fill('');
  await page.getByLabel('E-mail').fill('desk at example');
  await page.getByTestId('create').click();
  await expect.poll(() => page.getByTestId('email-error').textContent()).toBe('That is not an e-mail address.');

  await page.getByLabel('E-mail').fill('');
  await page.getByLabel('Webhook URL').fill('ftp://example.org/hook');
  await page.getByTestId('create').click();
  await expect.poll(() => page.getByTestId('webhook-error').textContent()).toBe('The webhook: must be an http or https URL.');
  expect(await page.getByTestId('alert').count(), 'nothing created').toBe(1);
  expect(
    problems.slice(failed).every((p) => /^HTTP 400 (POST|GET) |status of 400 \(Bad Request\)$/.test(p)),
    problems.join('\n'),
  ).toBe(true);
  await page.getByLabel('Webhook URL').fill('');
  await query.fill('');
}, 60_000);

it('shows a caption aired on the channel as a match the moment it arrives, and says so', async () => {
  await page.locator('[data-testid="live"][data-state="live"]').waitFor({ timeout: 15_000 });
  await waitFor('the matcher to hold the alert', async () => ((await alertCount()) ?? 0) >= 1);
  const failed = problems.length;
  await air('alerts-page.other', ['The harbour bridge is closed.']); // not the alert's channel
  await air(CHANNEL, ['Breaking: the harbour bridge is closed to traffic.']);
  const match = page.locator('[data-testid="match"][data-new="true"]');
  await match.waitFor({ timeout: 15_000 });
  expect(await match.count()).toBe(1);
  expect(await match.locator('.snippet').textContent()).toBe('Breaking: the harbour bridge is closed to traffic.');
  expect(await match.locator('mark').allTextContents()).toEqual(['harbour', 'bridge']);
  expect(await match.getAttribute('data-channel')).toBe(CHANNEL);
  expect(await match.locator('.query').textContent()).toBe('“harbour bridge”');
  await expect
    .poll(() => page.getByTestId('announce').textContent())
    .toBe(`New match for “harbour bridge” on ${CHANNEL}: Breaking: the harbour bridge is closed to traffic.`);
  expect(await page.getByTestId('announce').getAttribute('aria-live')).toBe('polite');
  expect(problems.slice(failed)).toEqual([]);
}, 60_000);

it('deletes an alert: gone from the page, for the API, and after a reload', async () => {
  const failed = problems.length;
  const alert = page.getByTestId('alert');
  await alert.getByRole('button', { name: 'Delete the alert “harbour bridge”' }).click();
  await expect.poll(() => alert.count()).toBe(0);
  expect(await page.getByTestId('alerts-empty').isVisible()).toBe(true);
  expect(await page.getByTestId('alert-count').textContent()).toBe('0 alerts');
  const userId = await page.evaluate(() => localStorage.getItem('castlog.userId'));
  expect((await (await fetch(`${sys.api}/v1/alerts`, { headers: { 'x-userid': userId! } })).json()).alerts).toEqual([]);
  await page.reload();
  await page.locator('[data-testid="alerts"][data-state="ready"]').waitFor({ state: 'attached' });
  expect(await page.getByTestId('alert').count()).toBe(0);
  expect(problems.slice(failed)).toEqual([]);
  await page.context().close();
}, 60_000);
