// The /admin page in headless Chromium against the real api and projector: the admin token is
// asked for and kept in the tab, projections show their versions with live lag and row counts,
// a rebuild shows its progress until the swap, verify shows what differs, a wrong token is refused.
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { System, fragment, waitFor } from '../support/system.ts';
import { launchChromium, openPage } from './browser.ts';

const TOKEN = 'test-admin-token';
const CHANNELS = ['adm.one', 'adm.two', 'adm.three'];
const PER_CHANNEL = 1000;
const SCREENSHOT = '/tmp/castlog-admin-page.png';

let sys: System;
let key: string;
let browser: Browser;
let page: Page;
let problems: string[];
const seqs: Record<string, number> = {};

async function post(channel: string, n: number): Promise<void> {
  for (let done = 0; done < n; done += 500) {
    const frs = Array.from({ length: Math.min(500, n - done) }, () => {
      const seq = (seqs[channel] = (seqs[channel] ?? 0) + 1);
      return fragment(seq, `${channel} says ${seq}`);
    });
    const r = await sys.postJson(channel, key, frs);
    expect(r.body.accepted).toHaveLength(frs.length);
  }
}

const byTestId = (id: string, p = page) => p.getByTestId(id);
const text = async (id: string, p = page) => (await byTestId(id, p).textContent()) ?? '';
const waitAttr = (selector: string, p = page, timeout = 30_000) => p.locator(selector).first().waitFor({ state: 'attached', timeout });

beforeAll(async () => {
  browser = await launchChromium();
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('projector')]);
  key = await sys.stationKey('admin-page-station');
  for (const c of CHANNELS) await post(c, PER_CHANNEL);
  await waitFor('captions v1 has every fragment', async () => (await sys.fragments(CHANNELS[2]!)).length === PER_CHANNEL, 60_000);
  ({ page, problems } = await openPage(browser, { viewport: { width: 1280, height: 900 } }));
}, 180_000);

afterAll(async () => {
  await browser?.close(); // and the page's context with it
  await sys?.stop();
});

describe('the projections admin page', () => {
  it('asks for the admin token, then shows every projection with its serving version, lag and rows', async () => {
    await page.goto(`${sys.api}/admin`);
    expect(await page.title()).toMatch(/castlog/);
    await byTestId('token-input').waitFor();
    expect(await byTestId('token-form').isVisible()).toBe(true);
    await byTestId('token-input').fill(TOKEN);
    await byTestId('token-submit').click();

    await waitAttr('[data-testid="connection"][data-state="live"]');
    expect(await byTestId('token-form').isVisible()).toBe(false);
    expect(await page.evaluate(() => sessionStorage.getItem('castlog.adminToken'))).toBe(TOKEN);
    for (const name of ['analytics', 'captions', 'encodes', 'streams', 'uploads']) {
      await byTestId(`projection-${name}`).waitFor();
      expect(await text(`serving-${name}`)).toBe('serving v1');
    }
    const total = CHANNELS.length * PER_CHANNEL;
    await expect.poll(() => text('rows-captions-1'), { timeout: 10_000 }).toContain(`caption_fragments ${total.toLocaleString('en')}`);
    expect(await text('rows-captions-1')).toContain('channels 3');
    expect(await text('lag-captions-1')).toBe('0');
    expect(await byTestId('version-captions-1').getAttribute('data-role')).toBe('serving');
  });

  it('shows the lag live: it grows while the projector is down and falls back to 0 when it catches up', async () => {
    await sys.kill('projector');
    await post('adm.one', 7);
    await expect.poll(() => text('lag-captions-1'), { timeout: 10_000 }).toBe('7');
    expect(await byTestId('lag-captions-1').getAttribute('data-behind')).toBe('true');
    await sys.start('projector');
    await expect.poll(() => text('lag-captions-1'), { timeout: 30_000 }).toBe('0');
    expect(await text('rows-captions-1')).toContain(`caption_fragments ${(CHANNELS.length * PER_CHANNEL + 7).toLocaleString('en')}`);
  }, 90_000);

  it('verifies captions against the log and shows which channel and hour differ', async () => {
    await byTestId('verify-captions').click();
    await waitAttr('[data-testid="verify-result-captions"][data-state="ok"]');
    expect(await text('verify-result-captions')).toMatch(/No differences: 3,007 fragments/);

    await sql`DELETE FROM captions_v1.caption_fragments WHERE channel = 'adm.two' AND seq = 5`.execute(sys.db);
    await byTestId('verify-captions').click();
    await waitAttr('[data-testid="verify-result-captions"][data-state="differ"]');
    const hour = new Date(Math.floor(fragment(5).start / 3_600_000) * 3_600_000).toISOString();
    const differences = await byTestId('verify-difference').allTextContents();
    expect(differences).toEqual([expect.stringContaining(`adm.two, hour from ${hour}`)]);
    expect(differences[0]).toMatch(/in the log, .* in the read model/);
  }, 60_000);

  it('rebuilds with a progress bar while the old version serves, until the swap', async () => {
    // Every progress value the page shows, however briefly.
    await page.evaluate(() => {
      const box = document.querySelector('[data-testid="rebuild-status-captions"]')!;
      const seen: string[] = [];
      (window as any).progressSeen = seen;
      new MutationObserver(() => seen.push(`${box.getAttribute('data-state')}:${box.getAttribute('data-progress')}`)).observe(box, {
        attributes: true,
      });
    });
    // With the projector stopped the new version cannot finish under our eyes: the building state
    // is there to be looked at, however fast the machine.
    await sys.kill('projector');
    await byTestId('rebuild-captions').click();
    await waitAttr('[data-testid="rebuild-status-captions"][data-state="building"]');
    expect(await byTestId('progress-captions').isVisible()).toBe(true);
    expect(await byTestId('rebuild-captions').isDisabled()).toBe(true);
    await expect.poll(() => text('building-captions'), { timeout: 10_000 }).toBe('building v2');
    await byTestId('version-captions-2').waitFor();
    expect(await byTestId('version-captions-2').getAttribute('data-role')).toBe('building');
    expect(await text('serving-captions')).toBe('serving v1');

    await sys.start('projector');
    await waitAttr('[data-testid="rebuild-status-captions"][data-state="swapped"]', page, 90_000);
    expect(await text('rebuild-message-captions')).toMatch(/Swapped in v2/);
    expect(await text('serving-captions')).toBe('serving v2');
    expect(await byTestId('building-captions').isVisible()).toBe(false);
    expect(await byTestId('rebuild-captions').isEnabled()).toBe(true);
    expect(await byTestId('progress-captions').isVisible()).toBe(false);
    const seen: string[] = await page.evaluate(() => (window as any).progressSeen);
    const building = seen.filter((s) => s.startsWith('building:')).map((s) => Number(s.split(':')[1]));
    expect(building.length).toBeGreaterThan(0);
    expect(building.some((p) => p < 1)).toBe(true);
    // The rebuilt version has every fragment again, the one deleted behind v1's back too.
    await expect.poll(() => text('rows-captions-2'), { timeout: 10_000 }).toContain('caption_fragments 3,007');
    expect(await byTestId('version-captions-2').getAttribute('data-role')).toBe('serving');
    await byTestId('verify-captions').click();
    await waitAttr('[data-testid="verify-result-captions"][data-state="ok"]');
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(problems).toEqual([]);
  }, 150_000);

  it('keeps the token for the tab across a reload, and forgets it on request', async () => {
    await page.reload();
    await waitAttr('[data-testid="connection"][data-state="live"]');
    expect(await byTestId('token-form').isVisible()).toBe(false);
    await byTestId('signout').click();
    expect(await byTestId('token-form').isVisible()).toBe(true);
    expect(await page.evaluate(() => sessionStorage.getItem('castlog.adminToken'))).toBeNull();
  });

  it('says clearly when the token is wrong, and keeps nothing', async () => {
    const { context: other, page: p, problems: seen } = await openPage(browser, {}, [/401/]);
    try {
      await p.goto(`${sys.api}/admin`);
      await byTestId('token-input', p).fill('not-the-token');
      await byTestId('token-input', p).press('Enter');
      await waitAttr('[data-testid="connection"][data-state="refused"]', p);
      expect(await text('auth-error', p)).toMatch(/refused this token \(401: authorization: the admin token is required\)/);
      expect(await byTestId('token-input', p).getAttribute('aria-invalid')).toBe('true');
      expect(await byTestId('token-form', p).isVisible()).toBe(true);
      expect(await p.locator('[data-testid^="projection-"]').count()).toBe(0);
      expect(await p.evaluate(() => sessionStorage.getItem('castlog.adminToken'))).toBeNull();
      expect(seen.filter((s) => !/HTTP 401/.test(s))).toEqual([]);
    } finally {
      await other.close();
    }
  });
});
