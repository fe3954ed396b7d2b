// The /admin page in headless Chromium against the real api and projector: the admin token is
// asked for and kept in the tab, projections show their versions with live lag (per partition, with
// its pace) and row counts, a rebuild asks first (naming what it drops) and shows its progress until
// the swap, verify shows what differs, a wrong token is refused in words.
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
    expect(await text('runners-captions-1')).toMatch(/^1 projector · [\d.:a-f]+$/);
    expect(await byTestId('runners-captions-1').getAttribute('data-none')).toBe('false');
  });

  it('shows the lag live: it grows while the projector is down and falls back to 0 when it catches up', async () => {
    await sys.kill('projector');
    await post('adm.one', 7);
    await expect.poll(() => text('lag-captions-1'), { timeout: 10_000 }).toBe('7');
    expect(await byTestId('lag-captions-1').getAttribute('data-behind')).toBe('true');
    await expect.poll(() => text('pace-captions-1'), { timeout: 10_000 }).toBe('not moving');
    // Killed, it leaves its consumer groups when its session ends (10 s): then nobody runs v1.
    await expect.poll(() => text('runners-captions-1'), { timeout: 20_000 }).toBe('no projector');
    expect(await byTestId('runners-captions-1').getAttribute('data-none')).toBe('true');
    // Per partition: the 7 are all in the partition of adm.one.
    await byTestId('partitions-captions-1').locator('summary').click();
    const lags = async () =>
      (await page.getByTestId('partition-lag-captions-1').evaluateAll((rows) => rows.map((r) => r.children[1]!.textContent))).map(Number);
    await expect.poll(async () => (await lags()).filter((n) => n > 0)).toEqual([7]);
    await sys.start('projector');
    await expect.poll(() => text('lag-captions-1'), { timeout: 30_000 }).toBe('0');
    expect(await text('pace-captions-1')).toBe('caught up');
    // The list stays open across refreshes.
    expect(await byTestId('partitions-captions-1').getAttribute('open')).toBe('');
    expect((await lags()).every((n) => n === 0)).toBe(true);
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
    expect(differences).toEqual([
      expect.stringMatching(/^adm\.two, the hour from Nov 14, 2023, .*: 1,000 in the log, 999 in the read model$/),
    ]);
    expect(await byTestId('verify-difference').getAttribute('data-hour')).toBe(hour);
  }, 60_000);

  it('asks before a rebuild, saying nothing is dropped the first time; cancelled, nothing happens', async () => {
    const posts: string[] = [];
    page.on('request', (r) => void (r.method() === 'POST' && /\/rebuild$/.test(r.url()) && posts.push(r.url())));
    await byTestId('rebuild-captions').click();
    const dialog = byTestId('confirm-rebuild');
    await dialog.waitFor();
    expect(await dialog.getByRole('heading').textContent()).toBe('Rebuild captions?');
    expect(await text('confirm-text')).toMatch(/v2 is built from the start of the log, beside v1, which keeps answering/);
    expect(await text('confirm-dropped')).toBe('Nothing is dropped: there is no version before the serving one.');
    await byTestId('confirm-cancel').click();
    await dialog.waitFor({ state: 'hidden' });
    expect(await byTestId('rebuild-status-captions').getAttribute('data-state')).toBe('idle');
    expect(await byTestId('building-captions').isVisible()).toBe(false);
    expect(posts).toEqual([]);
  });

  it('rebuilds with a progress bar while the old version serves, until the swap', async () => {
    // Every progress value the page shows, however briefly, and what the serving badge says whenever
    // the message says a version was swapped in.
    await page.evaluate(() => {
      const box = document.querySelector('[data-testid="rebuild-status-captions"]')!;
      const badge = document.querySelector('[data-testid="serving-captions"]')!;
      const seen: string[] = [];
      const swaps: string[] = [];
      (window as any).progressSeen = seen;
      (window as any).swapsSeen = swaps;
      new MutationObserver(() => {
        seen.push(`${box.getAttribute('data-state')}:${box.getAttribute('data-progress')}`);
        const m = /Swapped in (v\d+)/.exec(box.textContent ?? '');
        if (m) swaps.push(`${m[1]} ${badge.textContent}`);
      }).observe(box, { attributes: true, subtree: true, childList: true, characterData: true });
    });
    // With the projector stopped the new version cannot finish under our eyes: the building state
    // is there to be looked at, however fast the machine.
    await sys.kill('projector');
    await byTestId('rebuild-captions').click();
    await byTestId('confirm-ok').click();
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
    // "Swapped in v2" never shows beside a badge still naming v1.
    const swaps: string[] = await page.evaluate(() => (window as any).swapsSeen);
    expect(swaps.length).toBeGreaterThan(0);
    expect(new Set(swaps)).toEqual(new Set(['v2 serving v2']));
    // The rebuilt version has every fragment again, the one deleted behind v1's back too.
    await expect.poll(() => text('rows-captions-2'), { timeout: 10_000 }).toContain('caption_fragments 3,007');
    expect(await byTestId('version-captions-2').getAttribute('data-role')).toBe('serving');
    await byTestId('verify-captions').click();
    await waitAttr('[data-testid="verify-result-captions"][data-state="ok"]');
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // The next rebuild names what it would drop now: v1, kept since the swap.
    await byTestId('rebuild-captions').click();
    expect(await text('confirm-text')).toMatch(/v3 is built from the start of the log, beside v2/);
    expect(await text('confirm-dropped')).toMatch(/^v1 of captions is dropped now: the version before the serving one/);
    await page.keyboard.press('Escape');
    await byTestId('confirm-rebuild').waitFor({ state: 'hidden' });
    expect(await text('building-captions')).toBe('');
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
      expect(await text('auth-error', p)).toBe(
        'This token was not accepted. Check it with whoever runs this castlog server, then enter it again.',
      );
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
