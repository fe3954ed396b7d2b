// The search page in headless Chromium against the real api and projector: search with a phrase,
// see the highlighted hit, jump to the moment, download the range; caption text is never markup.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { System, fragment, waitFor } from '../support/system.ts';
import { launchChromium, openPage } from './browser.ts';

const NEWS = 'e2e.news';
const OTHER = 'e2e.other';
const SCREENSHOT = '/tmp/castlog-search-page.png';
// Ten captions 10 s apart on NEWS; the hit is the sixth.
const NEWS_TEXTS = [
  'Good evening, here is the news.',
  'Traffic is heavy on the ring road.',
  'The council met this afternoon.',
  'A new library opens next week.',
  'Now to the waterfront.',
  'The harbour bridge reopened this morning after repairs.',
  'Drivers welcomed the news.',
  'Ferries return to the normal timetable.',
  'Now the weather.',
  'Rain moving in overnight.',
];

let sys: System;
let browser: Browser;
let page: Page;
let problems: string[];
const $ = (id: string) => page.getByTestId(id);

beforeAll(async () => {
  [browser, sys] = await Promise.all([launchChromium(), System.create()]);
  await Promise.all([sys.start('api'), sys.start('projector')]);
  const key = await sys.stationKey('e2e-search');
  await sys.postJson(
    NEWS,
    key,
    NEWS_TEXTS.map((t, i) => ({
      ...fragment(i + 1, t, { lang: 'en' }),
      start: fragment(1).start + i * 10_000,
      end: fragment(1).start + i * 10_000 + 9000,
    })),
  );
  await sys.postJson(OTHER, key, [
    fragment(1, 'The bridge club meets at the harbour on Tuesdays', { lang: 'en' }),
    fragment(2, '<img src=x onerror="window.pwned=1"> bridge & <b>harbour</b>', { lang: 'en' }),
  ]);
  await waitFor('rows', async () => (await sys.fragments(NEWS)).length === NEWS_TEXTS.length && (await sys.fragments(OTHER)).length === 2);
  // The bad query below is answered 400 on purpose.
  ({ page, problems } = await openPage(browser, { viewport: { width: 1280, height: 900 }, acceptDownloads: true }));
}, 180_000);
afterAll(async () => {
  await browser?.close(); // and the page's context with it
  await sys?.stop();
});

describe('the search page', () => {
  it('finds a phrase and shows the hit highlighted, with its channel and time', async () => {
    await page.goto(`${sys.api}/search`);
    expect(await page.title()).toMatch(/castlog/);
    await expect.poll(() => $('search-channel').locator('option').allTextContents()).toContain(NEWS);
    await $('search-input').fill('"harbour bridge"');
    await $('search-button').click();
    await $('hit').first().waitFor();
    expect(await $('hit').count()).toBe(1);
    const hit = $('hit').first();
    expect(await hit.getByTestId('hit-channel').textContent()).toBe(NEWS);
    expect(await hit.getByTestId('hit-time').textContent()).toBe(
      `${new Date(fragment(1).start + 50_000).toISOString().slice(0, 19).replace('T', ' ')} UTC`,
    );
    expect(await hit.locator('mark').allTextContents()).toEqual(['harbour', 'bridge']);
    expect(await hit.getByTestId('snippet').textContent()).toBe(NEWS_TEXTS[5]);
    expect(page.url()).toContain('q=%22harbour+bridge%22');
  });

  it('shows caption text as text, never as markup', async () => {
    await $('search-input').fill('bridge harbour');
    await $('search-button').click();
    await expect.poll(() => $('hit').count()).toBe(3);
    const snippets = await $('snippet').allTextContents();
    // ts_headline leaves tag-like words out of snippets; what remains is text, the & escaped by the API.
    const evil = snippets.find((t) => t.includes('bridge &'))!;
    expect(evil).toMatch(/bridge & harbour/);
    expect(await page.locator('[data-testid="results"] img, [data-testid="results"] b').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    // Filtered to one channel.
    await $('search-channel').selectOption(NEWS);
    await $('search-button').click();
    await expect.poll(() => $('hit').count()).toBe(1);
  });

  it('jumps to the moment: the captions around the hit, the hit marked', async () => {
    await $('jump').first().click();
    await page.locator('[data-testid="context"][data-state="ready"] [data-testid="context-caption"]').first().waitFor();
    const texts = await $('context-caption').locator('span').allTextContents();
    // 60 s before to 120 s after the hit: all ten captions of the channel (from 50 s before).
    expect(texts).toEqual(NEWS_TEXTS);
    expect(await page.locator('[data-testid="context-caption"].moment span').textContent()).toBe(NEWS_TEXTS[5]);
    expect(await $('moment-heading').textContent()).toContain(NEWS);
    await page.screenshot({ path: SCREENSHOT });
  });

  it('downloads the range as WebVTT, SRT and text', async () => {
    const hitStart = fragment(1).start + 50_000;
    expect(await $('download-from').inputValue()).toBe(new Date(hitStart - 60_000).toISOString().slice(0, 19));
    // Narrow the range to the hit and the two captions after it.
    await $('download-from').fill(new Date(hitStart).toISOString().slice(0, 19));
    await $('download-to').fill(new Date(hitStart + 30_000).toISOString().slice(0, 19));
    for (const ext of ['vtt', 'srt', 'txt']) {
      const [download] = await Promise.all([page.waitForEvent('download'), $(`download-${ext}`).click()]);
      expect(download.suggestedFilename()).toMatch(new RegExp(`^${NEWS}_\\d{8}T\\d{6}Z-\\d{8}T\\d{6}Z\\.${ext}$`));
      const body = readFileSync((await download.path())!, 'utf8');
      for (const t of NEWS_TEXTS.slice(5, 8)) expect(body, ext).toContain(t);
      expect(body, ext).not.toContain(NEWS_TEXTS[4]);
      expect(body, ext).not.toContain(NEWS_TEXTS[8]);
      if (ext === 'vtt') expect(body.startsWith('WEBVTT')).toBe(true);
    }
  });

  it('says what is wrong with a bad query, next to the field', async () => {
    await $('search-input').fill('&&&|!:*');
    await $('search-button').click();
    await expect.poll(() => $('search-error').textContent()).toMatch(/^q: /);
    expect(await $('search-input').getAttribute('aria-invalid')).toBe('true');
    expect(problems.filter((p) => !/^HTTP 400 GET .*\/v1\/search\?/.test(p) && !/status of 400/.test(p))).toEqual([]);
  });
});
