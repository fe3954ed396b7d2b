// Lighthouse scores of the five pages (performance, accessibility, best practices), phone and
// desktop, against the real stack with live data: 26 channels, three of them getting a rollup
// caption a second, the wall following those three. Not a test: a measurement for the README.
//   KAFKA_BROKERS=… DATABASE_URL=… npx tsx test/e2e/lighthouse.ts [report dir, default /tmp/castlog-lighthouse]
// Each page is measured LIGHTHOUSE_RUNS times (3) and the run with the median performance score is
// kept: on a shared machine one run says more about the neighbours than about the page (Lighthouse's
// benchmarkIndex of each run is printed). Prints a Markdown table, and for each kept run the audits
// that did not pass; writes its full report (JSON) to the report dir. LIGHTHOUSE_ONLY=Alerts,Search
// measures only the pages so named. Uses Debian's Chromium
// (CHROMIUM_PATH), never a downloaded browser.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as chromeLauncher from 'chrome-launcher';
import lighthouse, { type Flags } from 'lighthouse';
import desktopConfig from 'lighthouse/core/config/desktop-config.js';
import { System, fragment, waitFor } from '../support/system.ts';
import { CHROMIUM } from './browser.ts';

const OUT = process.argv[2] ?? '/tmp/castlog-lighthouse';
const LIVE = ['bbc1', 'itv1', 'channel4'];
const CATEGORIES = ['performance', 'accessibility', 'best-practices'] as const;
const RUNS = Number(process.env.LIGHTHOUSE_RUNS ?? 3);
const PAGES = [
  ['Live wall', `/#channels=${LIVE.join(',')}`],
  ['Search', '/search?q=harbour+bridge'],
  ['Alerts', '/alerts'],
  ['Upload', '/upload'],
  ['Admin (sign-in)', '/admin'],
] as const;

const sys = await System.create();
let feeding = true;
let feed: Promise<void> = Promise.resolve();
const chrome = await chromeLauncher.launch({
  chromePath: CHROMIUM,
  chromeFlags: [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  await mkdir(OUT, { recursive: true });
  await Promise.all([sys.start('api'), sys.start('projector'), sys.start('fanout')]);
  const key = await sys.stationKey('capture-east');
  const seqs = new Map<string, number>();
  const say = (channel: string, n: number, at: number) =>
    Array.from({ length: n }, (_, i) => {
      const seq = (seqs.get(channel) ?? 0) + 1;
      seqs.set(channel, seq);
      return {
        ...fragment(seq, `${channel} caption ${seq}: the harbour bridge reopened this morning`, { lang: 'en', mode: 'rollup' }),
        start: at + i * 1000,
        end: at + i * 1000 + 900,
      };
    });
  const others = Array.from({ length: 23 }, (_, i) => `regional.${String(i + 1).padStart(2, '0')}`);
  for (const c of [...LIVE, ...others]) await sys.postJson(c, key, say(c, c.startsWith('regional') ? 3 : 40, Date.now() - 60_000));
  feed = (async () => {
    while (feeding) {
      await Promise.all(LIVE.map((c) => sys.postJson(c, key, say(c, 1, Date.now() - 800))));
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  await waitFor('the channels in the read model', async () => (await sys.get('/v1/channels')).body.channels.length >= 26);

  const rows: string[] = [];
  const only = process.env.LIGHTHOUSE_ONLY?.split(',').map((n) => n.trim());
  for (const [name, path] of PAGES.filter(([n]) => !only || only.some((o) => n.startsWith(o)))) {
    const cells: string[] = [];
    for (const form of ['mobile', 'desktop'] as const) {
      const flags: Flags = { port: chrome.port, output: 'json', logLevel: 'error', onlyCategories: [...CATEGORIES] };
      const runs = [];
      for (let i = 0; i < RUNS; i++) {
        const result = await lighthouse(`${sys.api}${path}`, flags, form === 'desktop' ? desktopConfig : undefined);
        if (!result) throw new Error(`no Lighthouse result for ${path}`);
        runs.push(result.lhr);
      }
      runs.sort((a, b) => (a.categories.performance?.score ?? 0) - (b.categories.performance?.score ?? 0));
      const lhr = runs[Math.floor(runs.length / 2)]!;
      const perf = runs.map(
        (r) => `${Math.round((r.categories.performance?.score ?? 0) * 100)} (${Math.round(r.environment.benchmarkIndex)})`,
      );
      await writeFile(join(OUT, `${name.split(' ')[0]!.toLowerCase()}-${form}.json`), JSON.stringify(lhr));
      const scores = CATEGORIES.map((c) => Math.round((lhr.categories[c]?.score ?? 0) * 100));
      cells.push(scores.join(' / '));
      const failing = Object.values(lhr.audits)
        .filter((a) => a.score !== null && a.score < 1 && a.scoreDisplayMode !== 'informative' && a.scoreDisplayMode !== 'manual')
        .map((a) => `${a.id} (${a.displayValue ?? a.score})`);
      console.error(`${name}, ${form}: ${scores.join(' / ')}; performance (benchmarkIndex) of each run: ${perf.join(', ')}`);
      if (failing.length) console.error(`  below full marks: ${failing.join(', ')}`);
    }
    rows.push(`| ${name} | ${cells.join(' | ')} |`);
  }
  const { version } = (await import('lighthouse/package.json', { with: { type: 'json' } })).default;
  console.log(
    [
      `Lighthouse ${version}, ${new Date().toISOString().slice(0, 10)}`,
      '',
      '| page | phone: performance / accessibility / best practices | desktop: the same |',
      '|---|---|---|',
      ...rows,
    ].join('\n'),
  );
} finally {
  feeding = false;
  await feed;
  chrome.kill();
  await sys.stop();
}
