// The live captions page in headless Chromium, against the real api, projector and fanout: a user
// picks channels, watches captions arrive in the right panel, rides out fanout restarts without
// missing or repeating a caption, and finds the same channels open after a reload.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { System, fragment, waitFor } from '../support/system.ts';
import { launchChromium, pageProblems } from './browser.ts';

const A = 'news.one';
const B = 'sports.two';
const SCREENSHOT = '/tmp/castlog-page.png';

let sys: System;
let key: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let problems: string[];

/** Per channel: the last seq posted, and the texts its panel should show, in order. */
const seqs: Record<string, number> = { [A]: 0, [B]: 0 };
const expected: Record<string, string[]> = { [A]: [], [B]: [] };

async function post(channel: string, n: number, label: string, show = true): Promise<void> {
  const frs = Array.from({ length: n }, () => {
    const seq = ++seqs[channel]!;
    return fragment(seq, `${channel} ${label} #${seq}`, { lang: 'en', mode: 'rollup' });
  });
  const r = await sys.postJson(channel, key, frs);
  expect(r.status).toBe(200);
  expect(r.body.accepted).toHaveLength(n);
  if (show) expected[channel]!.push(...frs.map((f) => f.text));
}

const panel = (channel: string) => page.getByTestId(`panel-${channel}`);
const texts = (channel: string) => panel(channel).getByTestId('caption-text').allTextContents();
const status = () => page.getByTestId('status');

async function waitState(selector: string, timeout = 30_000): Promise<void> {
  await page.locator(selector).waitFor({ state: 'attached', timeout });
}

const waitLive = (channel: string) => waitState(`[data-testid="panel-${channel}"][data-state="live"]`);
const waitConnection = (state: 'connected' | 'reconnecting') => waitState(`[data-testid="status"][data-state="${state}"]`);

/** Waits until the panel holds as many captions as were posted to it, then checks they are exactly those, in order. */
async function showsExactly(channel: string): Promise<void> {
  const want = expected[channel]!;
  const got = await waitFor(`panel ${channel} to show ${want.length} captions`, async () => {
    const t = await texts(channel);
    return t.length >= want.length && t;
  }, 30_000);
  expect(got).toEqual(want);
  const offsets = (await panel(channel).getByTestId('caption').evaluateAll((els) => els.map((e) => e.getAttribute('data-position'))))
    .map((p) => Number(p!.split(':')[1]));
  expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
  expect(new Set(offsets).size).toBe(offsets.length);
}

beforeAll(async () => {
  sys = await System.create();
  await sys.start('api');
  await sys.start('projector');
  await sys.start('fanout');
  key = await sys.stationKey('e2e-station');
  // Both channels exist before the page opens, so the page lists them; these are old news to it.
  await post(A, 1, 'before the page', false);
  await post(B, 1, 'before the page', false);
  await waitFor('both channels in the read model', async () => {
    const ids = (await sys.get('/v1/channels')).body.channels.map((c: { id: string }) => c.id);
    return ids.includes(A) && ids.includes(B);
  });
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  // While the fanout is down the browser logs each refused connection; that is expected.
  problems = pageProblems(page, [/WebSocket connection to .* failed/, /ERR_CONNECTION_REFUSED/]);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await sys?.stop();
});

describe('the live captions page', () => {
  it('follows two channels side by side, each caption in its own panel, in order', async () => {
    await page.goto(`${sys.api}/`);
    await waitConnection('connected');
    expect(await page.title()).toMatch(/castlog/);

    // Pick one from the list of known channels.
    const option = page.getByTestId(`channel-option-${A}`);
    await option.waitFor();
    await option.check();

    // Add the other by name; a bad name is refused with a reason and opens nothing.
    const input = page.getByTestId('add-channel-input');
    await input.fill('Sports Two');
    await page.getByTestId('add-channel-button').click();
    await expect.poll(() => page.getByTestId('add-channel-error').textContent()).toMatch(/lowercase/);
    expect(await input.getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('[data-testid^="panel-"]').count()).toBe(1);
    await input.fill(B);
    await input.press('Enter');
    expect(await page.getByTestId('add-channel-error').textContent()).toBe('');

    await waitLive(A);
    await waitLive(B);
    expect(await page.getByTestId(`channel-option-${B}`).isChecked()).toBe(true);
    expect(await panel(A).getByTestId('captions-' + A).getAttribute('aria-live')).toBe('polite');

    // Side by side: same row, A on the left.
    const boxA = (await panel(A).boundingBox())!;
    const boxB = (await panel(B).boundingBox())!;
    expect(boxA.y).toBe(boxB.y);
    expect(boxA.x + boxA.width).toBeLessThanOrEqual(boxB.x);

    await post(A, 3, 'live');
    await post(B, 2, 'live');
    await showsExactly(A);
    await showsExactly(B);
    // Station and time are shown with each caption.
    const first = panel(A).getByTestId('caption').first();
    expect(await first.locator('.station').textContent()).toBe('e2e-station');
    expect(await first.locator('time').getAttribute('datetime')).toBe(new Date(fragment(2).start).toISOString());
  }, 120_000);

  it('resumes on its own when the fanout dies and comes back: no gap, no repeat', async () => {
    await sys.kill('fanout');
    await waitConnection('reconnecting');
    expect(await status().textContent()).toMatch(/reconnecting/i);

    await post(A, 4, 'while down');
    await post(B, 3, 'while down');
    await sys.start('fanout');
    await waitConnection('connected');
    await waitLive(A);
    await waitLive(B);
    await post(A, 2, 'after');
    await post(B, 1, 'after');
    await showsExactly(A);
    await showsExactly(B);
  }, 120_000);

  it('also resumes when the fanout comes back without the missed captions in memory (from the read model)', async () => {
    await sys.kill('fanout');
    await waitConnection('reconnecting');
    await post(A, 3, 'down again');
    await post(B, 2, 'down again');
    // One record of memory per partition: the missed captions must come from Postgres.
    await sys.start('fanout', { FANOUT_HISTORY_PER_PARTITION: '1' });
    await post(A, 1, 'back again');
    await post(B, 1, 'back again');
    await showsExactly(A);
    await showsExactly(B);
    await waitConnection('connected');

    await page.screenshot({ path: SCREENSHOT, fullPage: false });
  }, 120_000);

  it('brings the picked channels back after a reload, and forgets a closed one', async () => {
    await page.reload();
    await waitLive(A);
    await waitLive(B);
    expect(new URL(page.url()).hash).toBe(`#channels=${A},${B}`);
    expect(await page.getByTestId(`channel-option-${A}`).isChecked()).toBe(true);
    expect(await page.getByTestId(`channel-option-${B}`).isChecked()).toBe(true);
    // A fresh page follows from now on.
    expected[A] = [];
    expected[B] = [];
    await post(A, 1, 'after reload');
    await post(B, 1, 'after reload');
    await showsExactly(A);
    await showsExactly(B);

    await page.getByTestId(`close-${B}`).click();
    await panel(B).waitFor({ state: 'detached' });
    expect(new URL(page.url()).hash).toBe(`#channels=${A}`);
    expect(await page.getByTestId(`channel-option-${B}`).isChecked()).toBe(false);

    // Opened without a hash, the page restores from localStorage.
    await page.goto(`${sys.api}/`);
    await waitLive(A);
    expect(await page.locator('[data-testid^="panel-"]').count()).toBe(1);
    expect(new URL(page.url()).hash).toBe(`#channels=${A}`);
    expected[A] = [];
    await post(A, 2, 'still here');
    await post(B, 1, 'not followed', false);
    await showsExactly(A);

    expect(problems).toEqual([]);
  }, 120_000);
});
