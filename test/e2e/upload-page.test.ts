// The upload page in headless Chromium against the real api, relay, projector, fanout and a worker:
// a file that is not a video is refused before a byte is sent; a raw .yuv uploads with its percent,
// size, speed and time left, pauses, survives a reload (listed as unfinished, resumed from where it
// stopped once the file is chosen again), is verified, encodes with each step and its percent live
// over the WebSocket (the page's user token), and downloads named after the input.
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
const isUpload = (r: Request) => new URL(r.url()).pathname.startsWith('/v1/uploads/');
/** Requests that create an upload or send its bytes (not the OPTIONS asking for the size limit, nor status GETs). */
const sendsBytes = (r: Request) => isUpload(r) && (r.method() === 'POST' || r.method() === 'PATCH');
const waitStatus = (state: string, timeout = 10_000) =>
  page.locator(`[data-testid="upload-status"][data-state="${state}"]`).waitFor({ timeout });

it('refuses a file that is not a video before sending any of it, and says why in words', async () => {
  page = await browser.newPage();
  const problems = pageProblems(page);
  const sent: string[] = [];
  page.on('request', (r) => void (sendsBytes(r) && sent.push(`${r.method()} ${r.url()}`)));
  await page.goto(`${sys.api}/upload`);
  expect(await page.getByTestId('file').getAttribute('accept')).toMatch(/^video\/\*,\.yuv/);

  const text = Buffer.from('Shopping list: eggs, milk, bread.\n'.repeat(200));
  await page.getByTestId('file').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: text });
  await waitStatus('refused');
  expect(await page.getByTestId('upload-note').textContent()).toMatch(
    /^“notes.txt” is not a video this service can read\. Choose a video file/,
  );
  expect(await page.getByTestId('start').isDisabled()).toBe(true);

  // Named and typed like a video, but its bytes are text: refused just the same.
  await page.getByTestId('file').setInputFiles({ name: 'clip.mp4', mimeType: 'video/mp4', buffer: text });
  await waitStatus('refused');
  expect(await page.getByTestId('upload-note').textContent()).toMatch(/^“clip.mp4” is not a video/);
  expect(await page.getByTestId('start').isDisabled()).toBe(true);

  // An empty file, too.
  await page.getByTestId('file').setInputFiles({ name: 'empty.yuv', mimeType: '', buffer: Buffer.alloc(0) });
  await waitStatus('refused');
  expect(await page.getByTestId('upload-note').textContent()).toBe('“empty.yuv” is empty.');

  expect(sent).toEqual([]);
  expect(problems).toEqual([]);
  await page.close();
});

it('uploads with progress, pause, a reload and a resume from where it stopped; encodes with live steps; downloads', async () => {
  const file = join(dir, 'camera.yuv');
  await makeYuv(file, { width: 320, height: 240, frames: 250, fps: 25 }); // 28.8 MB
  page = await browser.newPage();
  const problems = pageProblems(page);
  // The upload requests the page has open, how many it has started, and the offset of each PATCH.
  const open = new Set<Request>();
  let started = 0;
  const patches: number[] = [];
  page.on('request', (r) => {
    if (!isUpload(r)) return;
    open.add(r);
    started++;
    if (r.method() === 'PATCH') patches.push(Number(r.headers()['upload-offset']));
  });
  page.on('requestfinished', (r) => void open.delete(r));
  page.on('requestfailed', (r) => void open.delete(r));
  // Small chunks: the upload takes many PATCH requests, so there is time to pause it.
  await page.goto(`${sys.api}/upload?chunk=262144`);
  await page.getByTestId('file').setInputFiles(file);
  await expect.poll(() => page.getByTestId('width').isVisible()).toBe(true);
  await waitStatus('ready');
  await page.getByTestId('start').click();

  await waitFor('some progress', async () => (await progress()) >= 5, 30_000, 20);
  // Percent, bytes, speed and time left.
  await expect
    .poll(() => page.getByTestId('upload-detail').textContent())
    .toMatch(/^\d+% · [\d.]+ MB of 28\.8 MB · [\d.]+ [kM]B\/s · about \d+:\d\d left$/);
  await page.getByTestId('pause').click();
  await waitStatus('paused');
  const paused = await progress();
  const startedBeforePause = started;
  // The browser reports a request's start before the page can show the pause that follows it, and
  // its end once it is cut. With every upload request ended the bar has nothing left to report.
  await waitFor('the upload request the pause cut to end', () => open.size === 0, 10_000, 20);
  expect(await progress()).toBe(paused);
  expect(started, 'no upload request started while paused').toBe(startedBeforePause);
  expect(paused).toBeLessThan(100);

  // A reload: the page lists the unfinished upload, and resumes it once the file is chosen again.
  const patchesBefore = patches.length;
  await page.reload();
  const unfinished = page.getByTestId('unfinished-upload');
  await unfinished.waitFor();
  expect(await unfinished.textContent()).toMatch(/^camera\.yuv · \d+% of 28\.8 MB, started /);
  // Every state the upload goes through from here.
  await page.evaluate(() => {
    const badge = document.querySelector('[data-testid="upload-status"]')!;
    const seen: string[] = ((window as any).uploadStates = []);
    new MutationObserver(() => seen.push(badge.getAttribute('data-state')!)).observe(badge, { attributes: true });
  });
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), unfinished.getByTestId('resume-unfinished').click()]);
  await chooser.setFiles(file);
  await waitStatus('completed', 60_000);
  expect(patches[patchesBefore], 'the first PATCH after the reload goes on from where the upload stopped').toBeGreaterThan(0);
  expect(await progress()).toBe(100);
  const states = (await page.evaluate(() => (window as any).uploadStates)) as string[];
  expect(states.indexOf('verifying')).toBeGreaterThan(-1);
  expect(states.indexOf('verifying')).toBeLessThan(states.indexOf('completed'));
  expect(await page.getByTestId('upload-note').textContent()).toBe('Uploaded camera.yuv (28.8 MB). Choose the encode options below.');
  expect(await page.getByTestId('upload-note').getAttribute('data-sha256')).toBe(sha256(readFileSync(file)));
  expect(await page.getByTestId('start').isDisabled(), 'Upload waits for another file').toBe(true);
  expect(await page.getByTestId('unfinished').isVisible()).toBe(false);

  await page.getByTestId('preset').selectOption('medium'); // slow enough to show percents between 0 and 100
  await page.getByTestId('qp').fill('32');
  await page.getByTestId('container').selectOption('mp4');
  expect(await page.getByTestId('output-name').textContent()).toBe('Saves as camera.hevc.mp4');
  // The raw video's size is checked against the frame size before anything is asked.
  await page.getByTestId('width').fill('320');
  await page.getByTestId('height').fill('242');
  await page.getByTestId('fps').fill('25');
  await page.getByTestId('encode').click();
  expect(await page.getByTestId('options-error').textContent()).toBe(
    'The file is not a whole number of 320×242 frames: check the width and height.',
  );
  await page.getByTestId('height').fill('240');
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
  expect(await page.getByTestId('options-error').textContent()).toBe('');

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
  expect(await page.getByTestId('download').textContent()).toMatch(/^Download camera\.hevc\.mp4 \([\d.]+ [kM]B\)$/);
  await page.getByTestId('download').click();
  expect((await download).suggestedFilename()).toBe('camera.hevc.mp4');
  const bytes = readFileSync((await (await download).path())!);
  expect(bytes.length).toBeGreaterThan(1000);
  expect(bytes.subarray(4, 8).toString()).toBe('ftyp'); // an MP4
  expect(problems).toEqual([]);
}, 180_000);

it('cancels an upload: the server drops it, and it is not offered again after a reload', async () => {
  const file = join(dir, 'short.yuv');
  await makeYuv(file, { width: 320, height: 240, frames: 100, fps: 25 });
  page = await browser.newPage();
  const problems = pageProblems(page);
  const created: string[] = [];
  page.on('response', (r) => void (r.request().method() === 'POST' && isUpload(r.request()) && created.push(r.headers()['location']!)));
  await page.goto(`${sys.api}/upload?chunk=262144`);
  await page.getByTestId('file').setInputFiles(file);
  await waitStatus('ready');
  await page.getByTestId('start').click();
  await waitFor('some progress', async () => (await progress()) > 0, 30_000, 20);
  await page.getByTestId('cancel').click();
  await waitStatus('cancelled');
  expect(await page.getByTestId('start').isEnabled(), 'the same file can be sent again').toBe(true);
  expect(await page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('tus::'))), 'the browser forgot it').toEqual([]);
  // The server says the upload was ended by its user.
  const userId = await page.evaluate(() => localStorage.getItem('castlog.userId'));
  expect(created).toHaveLength(1);
  const r = await fetch(`${sys.api}/v1/uploads/${created[0]!.split('/').pop()}`, { headers: { 'x-userid': userId! } });
  expect((await r.json()).status).toBe('terminated');
  await page.reload();
  await page.locator('[data-testid="upload-status"][data-state="idle"]').waitFor();
  expect(await page.getByTestId('unfinished').isVisible()).toBe(false);
  expect(problems).toEqual([]);
}, 60_000);
