// The search page in headless Chromium against the real api and projector: search with a phrase,
// see the highlighted hit, jump to the moment, download the range; caption text is never markup;
// times are the reader's (a browser in New York here); mistakes are said in words, blank searches
// are not sent, and a moment from an earlier search does not outlive it.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { System, fragment, waitFor } from '../support/system.ts';
import { launchChromium, openPage } from './browser.ts';

const NEWS = 'e2e.news';
const OTHER = 'e2e.other';
const SCREENSHOT = '/tmp/castlog-search-page.png';
/** The browser is in New York: in November 2023, UTC-5. */
const ZONE = 'America/New_York';
const local = (ms: number) => new Date(ms - 5 * 3_600_000).toISOString().slice(0, 19);
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
/** Every search the page sent. */
const searches: string[] = [];
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
  ({ page, problems } = await openPage(browser, { viewport: { width: 1280, height: 900 }, acceptDownloads: true, timezoneId: ZONE }));
  page.on('request', (r) => void (new URL(r.url()).pathname === '/v1/search' && searches.push(r.url())));
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
    expect(await $('zone-hint').textContent()).toMatch(/your time zone \(EST\)/);
    await $('search-input').fill('"harbour bridge"');
    await $('search-button').click();
    await $('hit').first().waitFor();
    expect(await $('hit').count()).toBe(1);
    expect(await $('search-summary').textContent()).toBe('1 caption match.');
    const hit = $('hit').first();
    expect(await hit.getByTestId('hit-channel').textContent()).toBe(NEWS);
    // 22:14:11 UTC is 5:14:11 PM in New York, shown as the browser shows times (en-US: 12-hour).
    const hitStart = fragment(1).start + 50_000;
    expect(await hit.getByTestId('hit-time').getAttribute('datetime')).toBe(new Date(hitStart).toISOString());
    expect(await hit.getByTestId('hit-time').textContent()).toMatch(/^Nov 14, 2023, 5:14:11\sPM$/);
    expect(await hit.textContent()).not.toMatch(/position|\d+:\d+:\d+:/);
    expect(await hit.locator('mark').allTextContents()).toEqual(['harbour', 'bridge']);
    expect(await hit.getByTestId('snippet').textContent()).toBe(NEWS_TEXTS[5]);
    expect(page.url()).toContain('q=%22harbour+bridge%22');
  });

  it('shows caption text as text, never as markup', async () => {
    await $('search-input').fill('bridge harbour');
    await $('search-button').click();
    await expect.poll(() => $('hit').count()).toBe(3);
    expect(await $('search-summary').textContent()).toBe('3 captions match.');
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
    expect(await $('moment-heading').textContent()).toMatch(new RegExp(`^${NEWS}, Nov 14, 2023, 5:13:11\\sPM – 5:16:11\\sPM$`));
    await page.screenshot({ path: SCREENSHOT });
  });

  it('downloads the range as WebVTT, SRT and text', async () => {
    const hitStart = fragment(1).start + 50_000;
    // The range fields are in the reader's time too.
    expect(await $('download-from').inputValue()).toBe(local(hitStart - 60_000));
    // Narrow the range to the hit and the two captions after it.
    await $('download-from').fill(local(hitStart));
    await $('download-to').fill(local(hitStart + 30_000));
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

  it('says what is wrong with a bad query in words, next to the field, and the moment goes with the old search', async () => {
    expect(await $('moment').isVisible()).toBe(true);
    await $('search-input').fill('&&&|!:*');
    await $('search-button').click();
    await expect
      .poll(() => $('search-error').textContent())
      .toBe('Add a word to look for: punctuation and very common words like “the” find nothing on their own.');
    expect(await $('search-input').getAttribute('aria-invalid')).toBe('true');
    expect(await $('moment').isVisible()).toBe(false);
    expect(await $('hit').count()).toBe(0);

    // Found nothing: no moment from before either.
    await $('search-input').fill('harbour');
    await $('search-button').click();
    await $('jump').first().click();
    await page.locator('[data-testid="context"][data-state="ready"]').waitFor();
    await $('search-input').fill('zeppelin');
    await $('search-button').click();
    await expect.poll(() => $('search-summary').textContent()).toBe('No captions match “zeppelin”.');
    expect(await $('moment').isVisible()).toBe(false);
    expect(await $('search-error').textContent()).toBe('');
    expect(await $('search-input').getAttribute('aria-invalid')).toBeNull();
    expect(problems.filter((p) => !/^HTTP 400 GET .*\/v1\/search\?/.test(p) && !/status of 400/.test(p))).toEqual([]);
  });

  it('does not send a blank search, nor a range that ends before it starts', async () => {
    const before = searches.length;
    await $('search-input').fill('   ');
    await $('search-button').click();
    expect(await $('search-error').textContent()).toBe('Type a word or a phrase to search for.');
    expect(await $('search-input').getAttribute('aria-invalid')).toBe('true');
    await $('search-input').fill('bridge');
    await $('search-from').fill('2023-11-14T18:00:00');
    await $('search-to').fill('2023-11-14T17:00:00');
    await $('search-button').click();
    expect(await $('search-error').textContent()).toBe('The end of the time range is before its start.');
    expect(await $('search-to').getAttribute('aria-invalid')).toBe('true');
    expect(searches.length).toBe(before);
    // The range is the reader's time: 5 PM to 6 PM in New York holds the captions (22:13 to 22:15 UTC);
    // 6 PM to 7 PM holds none.
    await $('search-from').fill('2023-11-14T18:00:00');
    await $('search-to').fill('2023-11-14T19:00:00');
    await $('search-button').click();
    await expect.poll(() => $('search-summary').textContent()).toBe('No captions match “bridge”.');
    await $('search-from').fill('2023-11-14T17:00:00');
    await $('search-to').fill('2023-11-14T18:00:00');
    await $('search-button').click();
    await expect.poll(() => $('hit').count()).toBe(1); // the channel is still NEWS
    expect(new URL(searches.at(-1)!).searchParams.get('from')).toBe('2023-11-14T22:00:00.000Z');
  });
});
