// Screenshots of every page at desktop and phone sizes, against the real stack with live data, for
// a person to look at (not a test): 26 channels, three of them getting a rollup caption a second,
// a search with its moment, the alerts page with an alert and a refused field, the upload page with
// a file picked, the admin board signed in.
//   KAFKA_BROKERS=… DATABASE_URL=… npx tsx test/e2e/screenshots.ts [out dir, default /tmp/castlog-shots]
// Prints each file written and whether the page scrolls sideways at that size.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { System, fragment, waitFor } from '../support/system.ts';
import { launchChromium, sidewaysOverflow } from './browser.ts';

const OUT = process.argv[2] ?? '/tmp/castlog-shots';
export const SIZES = [
  { name: 'desktop', width: 1366, height: 800 },
  { name: 'phone', width: 390, height: 844 },
  { name: 'narrow', width: 360, height: 740 },
] as const;
const TOKEN = 'test-admin-token';
const LIVE = ['bbc1', 'itv1', 'channel4'];
const WORDS = 'the council met this afternoon to discuss the harbour bridge and the ferries that return to the normal timetable'.split(' ');

async function main(): Promise<void> {
  await mkdir(OUT, { recursive: true });
  const sys = await System.create();
  const browser = await launchChromium();
  let feeding = true;
  try {
    await Promise.all([sys.start('api'), sys.start('projector'), sys.start('fanout')]);
    const key = await sys.stationKey('capture-east');
    const seqs = new Map<string, number>();
    const now = Date.now();
    const say = (channel: string, n: number, at: number) =>
      Array.from({ length: n }, (_, i) => {
        const seq = (seqs.get(channel) ?? 0) + 1;
        seqs.set(channel, seq);
        const text = Array.from({ length: 6 + (seq % 7) }, (_, j) => WORDS[(seq * 3 + j) % WORDS.length]).join(' ');
        return { ...fragment(seq, text, { lang: 'en', mode: 'rollup' }), start: at + i * 1000, end: at + i * 1000 + 900 };
      });
    const others = Array.from({ length: 23 }, (_, i) => `regional.${String(i + 1).padStart(2, '0')}`);
    for (const c of [...LIVE, ...others]) await sys.postJson(c, key, say(c, c.startsWith('regional') ? 3 : 40, now - 60_000));
    // Three stations keep sending, a caption a second each.
    const feed = (async () => {
      while (feeding) {
        await Promise.all(LIVE.map((c) => sys.postJson(c, key, say(c, 1, Date.now() - 800))));
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    await waitFor('the channels in the read model', async () => (await sys.get('/v1/channels')).body.channels.length >= 26);

    for (const size of SIZES) {
      const context = await browser.newContext({ viewport: { width: size.width, height: size.height } });
      const page = await context.newPage();
      const shot = async (name: string, fullPage = false) => {
        const file = join(OUT, `${name}-${size.name}.png`);
        await page.screenshot({ path: file, fullPage });
        console.log(`${file}  sideways overflow: ${await sidewaysOverflow(page)} px`);
      };

      await page.goto(`${sys.api}/#channels=${LIVE.join(',')}`);
      await page.locator('[data-testid="status"][data-state="connected"]').waitFor();
      await page.waitForTimeout(3000);
      await shot('live');
      await page.getByTestId('display-settings').locator('summary').click();
      await page.getByTestId('view-rolling').check();
      await page.getByTestId('size-l').check();
      await page.getByTestId('contrast-high').check();
      await page.getByTestId('display-settings').locator('summary').click();
      await page.waitForTimeout(1500);
      await shot('live-rolling');
      await page.evaluate(() => localStorage.removeItem('castlog.wall.settings'));

      await page.goto(`${sys.api}/search?q=harbour+bridge`);
      await page.getByTestId('hit').first().waitFor();
      await page.getByTestId('jump').first().click();
      await page.locator('[data-testid="context"][data-state="ready"]').waitFor();
      await page.evaluate(() => window.scrollTo(0, 0));
      await shot('search', true);

      await page.goto(`${sys.api}/alerts`);
      await page.getByLabel('Words to listen for').fill('harbour bridge');
      await page.getByLabel('Channels').fill(LIVE.join(', '));
      await page.getByLabel('Language').fill('en');
      await page.getByLabel('E-mail').fill('desk@example.org');
      await page.getByTestId('preview-button').click();
      await page.locator('[data-testid="preview"][data-state="ready"]').waitFor();
      await page.getByTestId('create').click();
      await page.getByTestId('alert').first().waitFor();
      await page.getByLabel('Words to listen for').fill('-weather');
      await page.getByTestId('create').click();
      await page.getByTestId('query-error').filter({ hasText: /./ }).waitFor();
      await shot('alerts', true);

      await page.goto(`${sys.api}/upload`);
      await page.getByTestId('file').setInputFiles({ name: 'holiday-clip.mp4', mimeType: 'video/mp4', buffer: mp4Header() });
      await page.waitForTimeout(500);
      await shot('upload', true);

      await page.goto(`${sys.api}/admin`);
      await page.getByTestId('token-input').fill(TOKEN);
      await page.getByTestId('token-submit').click();
      await page.locator('[data-testid="connection"][data-state="live"]').waitFor();
      await page.waitForTimeout(1500);
      await shot('admin', true);
      await context.close();
    }
    feeding = false;
    await feed;
  } finally {
    feeding = false;
    await browser.close();
    await sys.stop();
  }
}

/** The first bytes of an MP4 (an ftyp box), enough for the page's own check of the file. */
function mp4Header(): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt32BE(24, 0);
  b.write('ftypisom', 4, 'latin1');
  return b;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
  await writeFile(join(OUT, 'README.txt'), `Screenshots taken ${new Date().toISOString()}\n`);
}
