// The live captions page in headless Chromium, against the real api, projector and fanout: a user
// picks channels, watches captions arrive in the right panel, rides out fanout restarts without
// missing or repeating a caption, and finds the same channels open after a reload.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { WebSocketServer, type WebSocket } from 'ws';
import { System, fragment, waitFor } from '../support/system.ts';
import { launchChromium, openPage } from './browser.ts';

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

const panel = (channel: string, p = page) => p.getByTestId(`panel-${channel}`);
const texts = (channel: string, p = page) => panel(channel, p).getByTestId('caption-text').allTextContents();
const status = (p = page) => p.getByTestId('status');

async function waitState(selector: string, p = page, timeout = 30_000): Promise<void> {
  await p.locator(selector).waitFor({ state: 'attached', timeout });
}

const waitLive = (channel: string, p = page) => waitState(`[data-testid="panel-${channel}"][data-state="live"]`, p);
const waitConnection = (state: 'connected' | 'reconnecting', p = page) => waitState(`[data-testid="status"][data-state="${state}"]`, p);

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(() => browser?.close());

/** Waits until the panel holds as many captions as were posted to it, then checks they are exactly those, in order. */
async function showsExactly(channel: string): Promise<void> {
  const want = expected[channel]!;
  const got = await waitFor(
    `panel ${channel} to show ${want.length} captions`,
    async () => {
      const t = await texts(channel);
      return t.length >= want.length && t;
    },
    30_000,
  );
  expect(got).toEqual(want);
  const offsets = (
    await panel(channel)
      .getByTestId('caption')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-position')))
  ).map((p) => Number(p!.split(':')[1]));
  expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
  expect(new Set(offsets).size).toBe(offsets.length);
}

describe('the live captions page', () => {
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
    // While the fanout is down the browser logs each refused connection; that is expected.
    ({ context, page, problems } = await openPage(browser, { viewport: { width: 1280, height: 800 } }, [
      /WebSocket connection to .* failed/,
      /ERR_CONNECTION_REFUSED/,
    ]));
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    await sys?.stop();
  });

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
    expect(await page.locator('section[data-testid^="panel-"]').count()).toBe(1);
    await input.fill(B);
    await input.press('Enter');
    expect(await page.getByTestId('add-channel-error').textContent()).toBe('');

    await waitLive(A);
    await waitLive(B);
    expect(await page.getByTestId(`channel-option-${B}`).isChecked()).toBe(true);
    expect(
      await panel(A)
        .getByTestId('captions-' + A)
        .getAttribute('aria-live'),
    ).toBe('polite');

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
    expect(await page.locator('section[data-testid^="panel-"]').count()).toBe(1);
    expect(new URL(page.url()).hash).toBe(`#channels=${A}`);
    expected[A] = [];
    await post(A, 2, 'still here');
    await post(B, 1, 'not followed', false);
    await showsExactly(A);

    expect(problems).toEqual([]);
  }, 120_000);
});

describe('what the page says on the live socket', () => {
  // A scripted stand-in for the fanout (the API's PUBLIC_LIVE_URL points the page at it), so the
  // test decides every frame the page gets, including repeats, and sees every frame it sends.
  interface Conn {
    ws: WebSocket;
    received: any[];
  }
  const CH = 'x.one';
  const conns: Conn[] = [];
  let wss: WebSocketServer;
  let other: System;
  let ctx: BrowserContext;
  let p: Page;
  let issues: string[];

  const send = (c: Conn, m: unknown) => c.ws.send(JSON.stringify(m));
  const caption = (offset: number, text: string, channel = CH) => ({
    type: 'caption',
    channel,
    position: `3:${offset}`,
    station: 'fake-station',
    seq: offset,
    text,
    start: 1_700_000_000_000 + offset * 1000,
    end: 1_700_000_000_000 + offset * 1000 + 900,
    mode: 'rollup',
    lang: 'en',
  });
  const subscribed = (position: string, recovered: boolean) => ({ type: 'subscribed', channel: CH, position, recovered });
  const connection = (i: number) => waitFor(`connection #${i + 1}`, () => conns[i], 20_000, 20);
  const ops = (c: Conn, op: string) => c.received.filter((m) => m.op === op);
  const nthSubscribe = (c: Conn, n: number) => waitFor(`subscribe #${n + 1}`, () => ops(c, 'subscribe')[n], 20_000, 20);
  async function shows(want: string[]): Promise<void> {
    const got = await waitFor(
      `${want.length} captions`,
      async () => {
        const t = await texts(CH, p);
        return t.length >= want.length && t;
      },
      20_000,
      20,
    );
    expect(got).toEqual(want);
  }

  beforeAll(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1/live' });
    await once(wss, 'listening');
    wss.on('connection', (ws) => {
      const c: Conn = { ws, received: [] };
      conns.push(c);
      ws.on('message', (d) => c.received.push(JSON.parse(String(d))));
    });
    other = await System.create();
    await other.start('api', { PUBLIC_LIVE_URL: `ws://127.0.0.1:${(wss.address() as { port: number }).port}/v1/live` });
    ({ context: ctx, page: p, problems: issues } = await openPage(browser, { viewport: { width: 900, height: 700 } }));
  }, 180_000);

  afterAll(async () => {
    await ctx?.close();
    for (const c of conns) c.ws.terminate();
    wss?.close();
    await other?.stop();
  });

  it('drops repeats and, after 4008, 1012 or "unavailable", resubscribes with since = the last position', async () => {
    // A channel named in the URL hash opens on load.
    await p.goto(`${other.api}/#channels=${CH}`);
    const c1 = await connection(0);
    expect(await nthSubscribe(c1, 0)).toEqual({ op: 'subscribe', channel: CH });
    send(c1, caption(9, 'before subscribed')); // not part of this subscription
    send(c1, subscribed('3:10', false));
    send(c1, caption(10, 'at the subscribed position'));
    send(c1, caption(11, 'eleven'));
    send(c1, caption(12, 'twelve'));
    send(c1, caption(12, 'twelve again'));
    send(c1, caption(8, 'older'));
    send(c1, caption(5, 'another channel', 'y.two'));
    send(c1, caption(13, 'thirteen'));
    await waitLive(CH, p);
    await shows(['eleven', 'twelve', 'thirteen']);

    c1.ws.close(4008, 'slow consumer: reconnect and resubscribe with since=<last position>');
    const c2 = await connection(1);
    expect(await nthSubscribe(c2, 0)).toEqual({ op: 'subscribe', channel: CH, since: '3:13' });
    send(c2, subscribed('3:13', true));
    send(c2, caption(13, 'thirteen again'));
    send(c2, caption(14, 'fourteen'));
    await shows(['eleven', 'twelve', 'thirteen', 'fourteen']);

    send(c2, { type: 'error', code: 'unavailable', message: 'could not recover the missed captions', channel: CH });
    expect(await nthSubscribe(c2, 1)).toEqual({ op: 'subscribe', channel: CH, since: '3:14' });
    send(c2, subscribed('3:14', true));
    send(c2, caption(15, 'fifteen'));
    await shows(['eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen']);

    c2.ws.close(1012, 'server restarting: reconnect and resubscribe with since');
    const c3 = await connection(2);
    expect(await nthSubscribe(c3, 0)).toEqual({ op: 'subscribe', channel: CH, since: '3:15' });
    send(c3, subscribed('3:15', true));
    send(c3, caption(16, 'sixteen'));
    await shows(['eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen']);
    await waitConnection('connected', p);
    expect(await status(p).textContent()).toMatch(/connected/i);

    // Closing the panel unsubscribes on the same socket.
    await p.getByTestId(`close-${CH}`).click();
    expect(await waitFor('unsubscribe', () => ops(c3, 'unsubscribe')[0], 20_000, 20)).toEqual({ op: 'unsubscribe', channel: CH });
    expect(conns).toHaveLength(3);
    expect(issues).toEqual([]);
  }, 120_000);
});
