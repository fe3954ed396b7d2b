// The upload page in headless Chromium against the real api, relay, projector, fanout and a worker:
// pick a raw .yuv, watch the upload bar, pause and resume it, choose options, watch each encode step
// and its percent arrive live over the WebSocket (the page's user token), download the HEVC file.
import { readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Browser, Page, Request } from 'playwright-core';
import { System, waitFor } from '../support/system.ts';
import { makeYuv, sha256 } from '../support/uploads.ts';
import { launchChromium, pageProblems } from './browser.ts';

let sys: System;
let browser: Browser;
let page: Page;
let dir: string;

beforeAll(async () => {
  dir = `/tmp/castlog-tests/page-${Date.now()}`;
  await mkdir(dir, { recursive: true });
  sys = await System.create({ BLOB_DIR: join(dir, 'blobs'), ENCODE_PROGRESS_INTERVAL_MS: '200' });
  await Promise.all([
    sys.start('api'),
    sys.start('relay'),
    sys.start('projector'),
    sys.start('fanout'),
    sys.start('worker'),
    launchChromium().then((b) => (browser = b)),
  ]);
});
afterAll(async () => {
  await browser?.close();
  await sys?.stop();
  await rm(dir, { recursive: true, force: true });
});

const progress = async () => Number(await page.getByTestId('upload-progress').evaluate((el) => (el as HTMLProgressElement).value));

it('uploads with pause and resume, encodes with live steps, downloads', async () => {
  const file = join(dir, 'camera.yuv');
  await makeYuv(file, { width: 320, height: 240, frames: 250, fps: 25 }); // 28.8 MB
  page = await browser.newPage();
  const problems = pageProblems(page);
  // The upload requests the page has open, and how many it has started.
  const open = new Set<Request>();
  let started = 0;
  const isUpload = (r: Request) => new URL(r.url()).pathname.startsWith('/v1/uploads/');
  page.on('request', (r) => void (isUpload(r) && (open.add(r), started++)));
  page.on('requestfinished', (r) => void open.delete(r));
  page.on('requestfailed', (r) => void open.delete(r));
  // Small chunks: the upload takes many PATCH requests, so there is time to pause it.
  await page.goto(`${sys.api}/upload?chunk=262144`);
  await page.getByTestId('file').setInputFiles(file);
  await expect.poll(() => page.getByTestId('width').isVisible()).toBe(true);
  await page.getByTestId('start').click();

  await waitFor('some progress', async () => (await progress()) >= 5, 30_000, 20);
  await page.getByTestId('pause').click();
  await page.locator('[data-testid="upload-status"][data-state="paused"]').waitFor({ timeout: 10_000 });
  const paused = await progress();
  const startedBeforePause = started;
  // The browser reports a request's start before the page can show the pause that follows it, and
  // its end once it is cut. With every upload request ended the bar has nothing left to report.
  await waitFor('the upload request the pause cut to end', () => open.size === 0, 10_000, 20);
  expect(await progress()).toBe(paused);
  expect(started, 'no upload request started while paused').toBe(startedBeforePause);
  expect(paused).toBeLessThan(100);

  await page.getByTestId('resume').click();
  await page.locator('[data-testid="upload-status"][data-state="completed"]').waitFor({ timeout: 60_000 });
  expect(await progress()).toBe(100);
  expect(await page.getByTestId('upload-note').textContent()).toBe(`sha256 ${sha256(readFileSync(file))}`);

  await page.getByTestId('preset').selectOption('medium'); // slow enough to show percents between 0 and 100
  await page.getByTestId('qp').fill('32');
  await page.getByTestId('container').selectOption('mp4');
  await page.getByTestId('width').fill('320');
  await page.getByTestId('height').fill('240');
  await page.getByTestId('fps').fill('25');
  // Every percent the page shows for a running step, as it shows it.
  await page.evaluate(() => {
    const seen: string[] = ((window as any).percentsSeen = []);
    new MutationObserver(() => {
      for (const li of document.querySelectorAll('[data-testid^="step-"][data-state="running"]'))
        seen.push(`${li.getAttribute('data-testid')} ${li.querySelector('.pct')?.textContent}`);
    }).observe(document.getElementById('steps')!, { childList: true, subtree: true });
  });
  await page.locator('[data-testid="live"][data-state="live"]').waitFor({ timeout: 10_000 });
  await page.getByTestId('encode').click();

  // Live: steps run one after another, the encode step's percent climbing, before the job completes.
  await page.locator('[data-testid^="step-"][data-state="running"]').first().waitFor({ timeout: 30_000 });
  await page.locator('[data-testid="job-status"][data-state="completed"]').waitFor({ timeout: 90_000 });
  for (const step of ['probe', 'encode', 'logo', 'mux', 'cleanup']) {
    expect(await page.getByTestId(`step-${step}`).getAttribute('data-state'), step).toBe('done');
  }
  // The page heard the job's events on its user channel, not only by asking.
  expect(Number(await page.getByTestId('steps').getAttribute('data-live-events'))).toBeGreaterThan(5);
  const seen = (await page.evaluate(() => (window as any).percentsSeen)) as string[];
  const encodePercents = seen.filter((s) => s.startsWith('step-encode ')).map((s) => Number(s.split(' ')[1]!.replace('%', '')));
  expect(
    encodePercents.some((p) => p > 0 && p < 100),
    seen.join(', '),
  ).toBe(true);
  expect(encodePercents, 'never backwards').toEqual([...encodePercents].sort((a, b) => a - b));
  expect(await page.getByTestId('step-extract').count()).toBe(0); // raw input needs no extraction

  const download = page.waitForEvent('download');
  await page.getByTestId('download').click();
  const saved = await (await download).path();
  const bytes = readFileSync(saved!);
  expect(bytes.length).toBeGreaterThan(1000);
  expect(bytes.subarray(4, 8).toString()).toBe('ftyp'); // an MP4
  expect(problems).toEqual([]);
}, 180_000);
