// The live captions page in headless Chromium, against the real api, projector and fanout: a user
// picks channels and sees their recent captions, watches new ones arrive in the right panel, rides
// out fanout restarts, a browser gone offline and a fanout that stops answering, and resumes after a
// reload or a reopen exactly where they left off: every caption once, in order, those sent while
// the page was away included.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { WebSocketServer, type WebSocket } from 'ws';
import { System, fragment, waitFor } from '../support/system.ts';
import { launchChromium, openPage, pageProblems } from './browser.ts';

const A = 'news.one';
const B = 'sports.two';
const QUIET = 'quiet.three';
const SCREENSHOT = '/tmp/castlog-page.png';
/** What the browser reports while it cannot reach the fanout on purpose. */
const EXPECTED_WHILE_DOWN = [/WebSocket connection to .* failed/, /ERR_CONNECTION_REFUSED/, /ERR_INTERNET_DISCONNECTED/];

let sys: System;
let key: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let problems: string[];

/** Per channel: the last seq posted, and the texts its panel should show, in order. */
const seqs: Record<string, number> = { [A]: 0, [B]: 0, [QUIET]: 0 };
const expected: Record<string, string[]> = { [A]: [], [B]: [], [QUIET]: [] };

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
const waitConnection = (state: 'connected' | 'reconnecting' | 'offline', p = page, timeout = 30_000) =>
  waitState(`[data-testid="status"][data-state="${state}"]`, p, timeout);

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(() => browser?.close());

/** Waits until the panel holds as many captions as were posted to it, then checks they are exactly those, in order. */
async function showsExactly(channel: string, p = page): Promise<void> {
  const want = expected[channel]!;
  const got = await waitFor(
    `panel ${channel} to show ${want.length} captions`,
    async () => {
      const t = await texts(channel, p);
      return t.length >= want.length && t;
    },
    30_000,
  );
  expect(got).toEqual(want);
  const offsets = (
    await panel(channel, p)
      .getByTestId('caption')
      .evaluateAll((els) => els.map((e) => e.getAttribute('data-position')))
  ).map((pos) => Number(pos!.split(':')[1]));
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
    // Both channels have a caption before the page opens: each panel shows it when it opens.
    await post(A, 1, 'before the page');
    await post(B, 1, 'before the page');
    await waitFor('both channels in the read model', async () => {
      const ids = (await sys.get('/v1/channels')).body.channels.map((c: { id: string }) => c.id);
      return ids.includes(A) && ids.includes(B);
    });
    ({ context, page, problems } = await openPage(browser, { viewport: { width: 1280, height: 800 } }, EXPECTED_WHILE_DOWN));
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    await sys?.stop();
  });

  it('follows two channels side by side, each showing its recent captions when it opens, then each new one in order', async () => {
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
    // Picked channels come first in the list.
    expect(await page.getByTestId('channel-list').locator('li').first().getAttribute('data-channel')).toBe(A);
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
    // The station is shown once, at the first caption (it does not change), with the time.
    expect(await panel(A).getByTestId('caption-station').allTextContents()).toEqual(['e2e-station']);
    const first = panel(A).getByTestId('caption').first();
    expect(await first.locator('time').getAttribute('datetime')).toBe(new Date(fragment(1).start).toISOString());
    // Under each panel: how old its last caption is.
    await expect.poll(() => page.getByTestId(`meta-${A}`).textContent()).toMatch(/^Last caption \d+ s ago/);
  }, 120_000);

  it('says so when a channel has never had a caption, and shows its first one when it comes', async () => {
    const input = page.getByTestId('add-channel-input');
    await input.fill(QUIET);
    await expect.poll(() => page.getByTestId('add-channel-hint').textContent()).toMatch(/No channel “quiet.three” has had captions yet/);
    await input.press('Enter');
    await waitLive(QUIET);
    expect(await page.getByTestId(`captions-${QUIET}`).getAttribute('data-empty')).toMatch(/No captions on quiet.three yet/);
    await expect.poll(() => page.getByTestId(`meta-${QUIET}`).textContent()).toBe('No captions on this channel yet');
    await post(QUIET, 1, 'at last');
    await showsExactly(QUIET);
    await page.getByTestId(`close-${QUIET}`).click();
    await panel(QUIET).waitFor({ state: 'detached' });
  }, 60_000);

  it('resumes on its own when the fanout dies and comes back: no gap, no repeat', async () => {
    await sys.kill('fanout');
    await waitConnection('reconnecting');
    expect(await status().textContent()).toMatch(/reconnecting|no connection/i);

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

  it('says "Offline" within 5 s of the browser losing its network, and catches up once it is back', async () => {
    await context.setOffline(true);
    const lostAt = Date.now();
    await waitConnection('offline', page, 5_000);
    expect(Date.now() - lostAt).toBeLessThan(5_000);
    expect(await status().textContent()).toMatch(/^Offline/);
    await waitState(`[data-testid="panel-${A}"][data-state="offline"]`);
    await expect.poll(() => page.getByTestId('announce').textContent()).toMatch(/offline/i);

    await post(A, 3, 'while offline');
    await post(B, 2, 'while offline');
    await context.setOffline(false);
    await waitConnection('connected');
    await showsExactly(A);
    await showsExactly(B);
    await expect.poll(() => page.getByTestId('announce').textContent()).toMatch(/connected again/i);
  }, 60_000);

  it('notices within 5 s a fanout that stops answering though the socket stays open, and catches up once it answers', async () => {
    const fanout = sys.procs.get('fanout')!;
    await waitLive(A);
    fanout.kill('SIGSTOP');
    const frozenAt = Date.now();
    try {
      await waitConnection('reconnecting', page, 5_000);
      expect(Date.now() - frozenAt).toBeLessThan(5_000);
      await post(A, 2, 'while frozen');
      await post(B, 1, 'while frozen');
    } finally {
      fanout.kill('SIGCONT');
    }
    await waitConnection('connected');
    await post(A, 1, 'thawed');
    await showsExactly(A);
    await showsExactly(B);
  }, 60_000);

  it('resumes after a reload: the lines shown before, then those sent during the reload, each once, in order', async () => {
    await waitLive(A);
    await waitLive(B);
    // The reload is held before the page can reach the fanout, so captions are sent while it cannot hear them.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let asked = false;
    await page.route('**/v1/config', async (route) => {
      asked = true;
      await held;
      await route.continue();
    });
    await page.reload();
    await waitFor('the reloaded page to ask for its config', () => asked);
    // Before it connects, the page already shows what it showed before the reload.
    await expect.poll(() => texts(A)).toEqual(expected[A]);
    await expect.poll(() => texts(B)).toEqual(expected[B]);
    await post(A, 3, 'during the reload');
    await post(B, 2, 'during the reload');
    release();
    await waitConnection('connected');
    await page.unroute('**/v1/config');
    await post(A, 1, 'after the reload');
    await showsExactly(A);
    await showsExactly(B);
    expect(new URL(page.url()).hash).toBe(`#channels=${A},${B}`);
    expect(await page.getByTestId(`channel-option-${A}`).isChecked()).toBe(true);
  }, 60_000);

  it('resumes when reopened, with what was sent while it was closed; a closed channel is forgotten', async () => {
    await page.getByTestId(`close-${B}`).click();
    await panel(B).waitFor({ state: 'detached' });
    expect(new URL(page.url()).hash).toBe(`#channels=${A}`);
    // Once a channel is open, the others are listed on request.
    await page.getByTestId('more-channels').click();
    expect(await page.getByTestId(`channel-option-${B}`).isChecked()).toBe(false);

    // The tab is closed (as a person closes it), captions keep coming, a new tab opens the page.
    await page.close({ runBeforeUnload: true });
    await post(A, 4, 'while closed');
    await post(B, 1, 'not followed', false);
    page = await context.newPage();
    const reopened = pageProblems(page, EXPECTED_WHILE_DOWN);
    await page.goto(`${sys.api}/`);
    await waitLive(A);
    expect(await page.locator('section[data-testid^="panel-"]').count()).toBe(1);
    expect(new URL(page.url()).hash).toBe(`#channels=${A}`);
    await post(A, 2, 'reopened');
    await showsExactly(A);

    expect(problems).toEqual([]);
    expect(reopened).toEqual([]);
  }, 60_000);
});

describe('what the page says on the live socket', () => {
  // A scripted stand-in for the fanout (the API's PUBLIC_LIVE_URL points the page at it), so the
  // test decides every frame the page gets, including repeats, and sees every frame it sends. Like
  // the real one, it answers an unsubscribe at once (the page's ping), unless told to keep silent.
  interface Conn {
    ws: WebSocket;
    received: any[];
    silent: boolean;
    openedAt: number;
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
  /** The page's requests about CH (its pings are about a channel of their own). */
  const ops = (c: Conn, op: string) => c.received.filter((m) => m.op === op && m.channel === CH);
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
      const c: Conn = { ws, received: [], silent: false, openedAt: Date.now() };
      conns.push(c);
      ws.on('message', (d) => {
        const m = JSON.parse(String(d));
        c.received.push(m);
        if (m.op === 'unsubscribe' && !c.silent) send(c, { type: 'unsubscribed', channel: m.channel });
      });
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
    // A channel named in the URL hash opens on load; it never had a caption, so it follows from now on.
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
    expect(conns).toHaveLength(3);
  }, 120_000);

  it('pings a quiet socket, gives it up within 5 s when nothing answers, and resumes on a new one', async () => {
    const c3 = conns[2]!;
    // A quiet socket gets asked something (an unsubscribe of a channel of its own), well within seconds.
    const ping = await waitFor('a ping', () => c3.received.find((m) => m.op === 'unsubscribe' && m.channel !== CH), 5_000, 20);
    expect(ping.channel).toMatch(/^[a-z0-9][a-z0-9._-]{0,63}$/);
    c3.silent = true; // the socket stays open, but nothing comes back
    const silentAt = Date.now();
    // The page gives it up and opens another (within a quarter second of giving up).
    const c4 = await connection(3);
    expect(c4.openedAt - silentAt).toBeLessThan(5_000);
    expect(await nthSubscribe(c4, 0)).toEqual({ op: 'subscribe', channel: CH, since: '3:16' });
    send(c4, subscribed('3:16', true));
    send(c4, caption(17, 'seventeen'));
    await shows(['eleven', 'twelve', 'thirteen', 'fourteen', 'fifteen', 'sixteen', 'seventeen']);

    // Closing the panel unsubscribes on the same socket.
    await p.getByTestId(`close-${CH}`).click();
    expect(await waitFor('unsubscribe', () => ops(c4, 'unsubscribe')[0], 20_000, 20)).toEqual({ op: 'unsubscribe', channel: CH });
    expect(conns).toHaveLength(4);
    expect(issues).toEqual([]);
  }, 60_000);
});
