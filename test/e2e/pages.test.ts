// All five pages as a phone and a desktop get them, against the real api, projector and fanout:
// the navigation between them, no sideways scrolling at 390 and 360 px wide in each page's fullest
// state (long channel ids, long words, open lists), and how they are served: compressed, with an
// ETag answered 304, and a CSP without 'unsafe-inline'.
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { Browser } from 'playwright-core';
import { System, fragment, waitFor } from '../support/system.ts';
import { launchChromium, openPage, sidewaysOverflow } from './browser.ts';

const TOKEN = 'test-admin-token';
const LONG = 'a-rather-long-channel-name.for-the-narrowest-phones-we-serve';
const SHORT = 'news.one';
const PAGES = {
  '/': 'index.html',
  '/search': 'search.html',
  '/alerts': 'alerts.html',
  '/upload': 'upload.html',
  '/admin': 'admin.html',
} as const;

let sys: System;
let browser: Browser;

/** A GET whose body is kept as bytes (a compressed body is not text). */
function get(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: sys.apiPort, path, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

beforeAll(async () => {
  [browser, sys] = await Promise.all([launchChromium(), System.create()]);
  await sys.start('api'); // first: on a loaded machine three starting at once may each miss their minute
  await Promise.all([sys.start('projector'), sys.start('fanout')]);
  const key = await sys.stationKey('a-capture-station-with-a-long-name');
  const text = (i: number) =>
    `Caption ${i} about the harbour bridge, with a long unbroken word: https://example.org/${'very-long-path-segment'.repeat(4)}`;
  for (const c of [LONG, SHORT])
    await sys.postJson(
      c,
      key,
      [1, 2, 3].map((i) => fragment(i, text(i), { lang: 'en' })),
    );
  // More channels than the picker lists at first.
  for (let i = 1; i <= 14; i++) await sys.postJson(`regional.${i}`, key, [fragment(1, `regional ${i}`)]);
  await waitFor('the channels in the read model', async () => (await sys.get('/v1/channels')).body.channels.length === 16);
}, 180_000);
afterAll(async () => {
  await browser?.close();
  await sys?.stop();
});

describe('the pages', () => {
  it('lead to each other: every page has the same navigation, the current page marked', async () => {
    const { context, page, problems } = await openPage(browser);
    try {
      await page.goto(`${sys.api}/`);
      for (const [name, path] of [
        ['Search', '/search'],
        ['Alerts', '/alerts'],
        ['Upload', '/upload'],
        ['Admin', '/admin'],
        ['Live', '/'],
      ] as const) {
        await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name, exact: true }).click();
        await page.waitForURL(`${sys.api}${path}`);
        const current = page.getByRole('navigation', { name: 'Pages' }).locator('[aria-current="page"]');
        expect(await current.textContent()).toBe(name);
        expect(await page.locator('h1').count(), `${path} has one h1`).toBe(1);
      }
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });

  for (const width of [390, 360]) {
    it(`fit a phone ${width} px wide: nothing scrolls sideways, on any page, in its fullest state`, async () => {
      const { context, page, problems } = await openPage(browser, { viewport: { width, height: 800 }, isMobile: true, hasTouch: true });
      const fits = async (what: string) => expect(await sidewaysOverflow(page), what).toBe(0);
      try {
        await page.goto(`${sys.api}/#channels=${LONG},${SHORT}`);
        await page.locator(`[data-testid="panel-${LONG}"][data-state="live"]`).waitFor();
        await expect.poll(() => page.getByTestId(`panel-${LONG}`).getByTestId('caption').count()).toBe(3);
        await fits('the live wall');
        await page.getByTestId('more-channels').click();
        await page.getByTestId('display-settings').locator('summary').click();
        await page.getByTestId('add-channel-input').fill('no-such-channel-with-a-long-name-typed-by-someone');
        await fits('the live wall, every channel listed, settings open, a long id typed');
        await page.getByTestId('view-rolling').check();
        await fits('the live wall, rolling');

        await page.goto(`${sys.api}/search?q=harbour`);
        await page.getByTestId('hit').first().waitFor();
        await page.getByTestId('jump').first().click();
        await page.locator('[data-testid="context"][data-state="ready"]').waitFor();
        await fits('search, with a moment');

        await page.goto(`${sys.api}/alerts`);
        await page.getByLabel('Words to listen for').fill(`harbour bridge ${'unbrokenwordthatgoesonandon'.repeat(3)} or harbour`);
        await page.getByLabel('Channels').fill(`${LONG}, ${SHORT}`);
        await page.getByLabel('E-mail').fill(`${'a-long-mailbox-name'.repeat(3)}@example.org`);
        await page.getByTestId('preview-button').click();
        await page.locator('[data-testid="preview"][data-state="ready"]').waitFor();
        await page.getByTestId('create').click();
        await page.getByTestId('alert').first().waitFor();
        await page.getByLabel('Words to listen for').fill('harbour');
        await page.getByLabel('Channels').fill(`${LONG.toUpperCase()}-with-capitals-that-make-it-no-channel-id`);
        await page.getByTestId('create').click();
        await page
          .getByTestId('channels-error')
          .filter({ hasText: /is not a channel id/ })
          .waitFor();
        await fits('alerts, a preview, an alert listed and a long refused channel id');

        await page.goto(`${sys.api}/upload`);
        await page.getByTestId('file').setInputFiles({
          name: `${'a-holiday-video-with-a-very-long-file-name-'.repeat(3)}.yuv`,
          mimeType: '',
          buffer: Buffer.alloc(320 * 240 * 3),
        });
        await page.locator('[data-testid="upload-status"][data-state="ready"]').waitFor();
        await fits('upload, a file chosen');

        await page.goto(`${sys.api}/admin`);
        await page.getByTestId('token-input').fill('wrong');
        await page.getByTestId('token-submit').click();
        await page.locator('[data-testid="connection"][data-state="refused"]').waitFor();
        await fits('admin, a token refused');
        await page.getByTestId('token-input').fill(TOKEN);
        await page.getByTestId('token-submit').click();
        await page.getByTestId('partitions-analytics-1').waitFor();
        for (const d of await page.locator('details.partitions summary').all()) await d.click();
        await fits('admin, every partition listed');
        await page.getByTestId('rebuild-captions').click();
        await page.getByTestId('confirm-rebuild').waitFor();
        await fits('admin, asking before a rebuild');
        await page.getByTestId('confirm-cancel').click();
        // The refusals the test asked for: the admin token, the alert's channel.
        expect(problems.filter((p) => !/HTTP 401|status of 401|HTTP 400 POST .*\/v1\/alerts|status of 400/.test(p))).toEqual([]);
      } finally {
        await context.close();
      }
    }, 90_000);
  }

  it('are sent compressed with an ETag, answered 304 when unchanged, under a CSP with no inline exceptions', async () => {
    const files: [string, string][] = [...Object.entries(PAGES), ['/assets/theme.css', 'theme.css'], ['/assets/common.js', 'common.js']];
    for (const [path, file] of files) {
      const original = readFileSync(new URL(`../../apps/web/${file}`, import.meta.url), 'utf8');
      const br = await get(path, { 'accept-encoding': 'gzip, deflate, br' });
      expect(br.status, path).toBe(200);
      expect(br.headers['content-encoding'], path).toBe('br');
      expect(br.headers['vary'], path).toMatch(/accept-encoding/i);
      expect(brotliDecompressSync(br.body).toString('utf8'), path).toBe(original);
      expect(br.headers['cache-control'], path).toBe('no-cache');
      const etag = br.headers['etag']!;
      expect(etag, path).toMatch(/^W\/"[\w-]+"$/);

      const gzip = await get(path, { 'accept-encoding': 'gzip' });
      expect(gzip.headers['content-encoding'], path).toBe('gzip');
      expect(gunzipSync(gzip.body).toString('utf8'), path).toBe(original);
      expect(gzip.headers['etag'], path).toBe(etag);

      const again = await get(path, { 'accept-encoding': 'br', 'if-none-match': etag });
      expect(again.status, path).toBe(304);
      expect(again.body.length, path).toBe(0);
      const changed = await get(path, { 'if-none-match': 'W/"something-else"' });
      expect(changed.status, path).toBe(200);
      expect(changed.body.toString('utf8'), path).toBe(original);

      if (file.endsWith('.html')) {
        const csp = br.headers['content-security-policy']!;
        expect(csp, path).toMatch(/script-src 'self' 'sha256-[^']+'/);
        expect(csp, path).not.toMatch(/unsafe/);
      }
    }
  });

  it('arrive compressed in the browser, and a page opened again costs a 304', async () => {
    const { context, page } = await openPage(browser);
    try {
      // What went over the wire (the page itself sees a revalidated page as the 200 it kept).
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      const urls = new Map<string, string>();
      const statuses: number[] = [];
      cdp.on('Network.requestWillBeSent', (e) => void urls.set(e.requestId, e.request.url));
      cdp.on(
        'Network.responseReceivedExtraInfo',
        (e) => void (urls.get(e.requestId) === `${sys.api}/search` && statuses.push(e.statusCode)),
      );
      const first = (await page.goto(`${sys.api}/search`))!;
      expect(await first.headerValue('content-encoding')).toBe('br');
      await page.reload();
      await waitFor('the reload to be answered', () => statuses.length === 2);
      expect(statuses).toEqual([200, 304]);
    } finally {
      await context.close();
    }
  });
});
