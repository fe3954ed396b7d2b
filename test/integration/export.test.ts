// Caption export as WebVTT, SRT and text: parsed back with real parsers (the W3C's webvtt-parser,
// srt-parser-2) they equal the stored fragments; streamed; empty ranges; bad parameters.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderExport, srtText } from '../../apps/api/export.ts';
import { System, fragment, waitFor } from '../support/system.ts';

const require = createRequire(import.meta.url);
const exec = promisify(execFile);
// Neither parser ships types; these are the parts used here.
const { WebVTTParser } = require('webvtt-parser') as {
  WebVTTParser: new (entities?: unknown) => {
    parse(input: string): {
      cues: { id: string; startTime: number; endTime: number; tree: { children: { type: string; value?: string }[] } }[];
      errors: { message: string; line: number }[];
    };
  };
};
const SrtParser = (
  require('srt-parser-2') as {
    default: new () => { fromSrt(s: string): { id: string; startSeconds: number; endSeconds: number; text: string }[] };
  }
).default;
const vttParser = new WebVTTParser(require('webvtt-parser/html-entities.json'));

let sys: System;
const ONE = 'export.one';
const BIG = 'export.big';
const BIG_N = 3500;

// seq -> text; seq 9 starts before seq 8 (a station's clock is not the log's order).
const TEXTS: Record<number, string> = {
  1: 'Good evening.',
  2: 'Tom & Jerry <b>live</b> at 9 > 8',
  3: 'a --> b, and --> again',
  4: 'two\nlines',
  5: '',
  6: 'Ünïcödé ✓ 字幕 🎬',
  7: '   ',
  8: 'late in the log',
  9: 'early in time',
};

interface Stored {
  start: number;
  end: number;
  text: string;
  position: string;
}
let stored: Stored[];

const get = (path: string) => fetch(`${sys.api}${path}`);

beforeAll(async () => {
  sys = await System.create();
  await Promise.all([sys.start('api'), sys.start('projector')]);
  const key = await sys.stationKey('export-station');
  const frs = Object.entries(TEXTS).map(([seq, text]) => fragment(Number(seq), text, { lang: 'en' }));
  frs[8] = { ...frs[8]!, start: fragment(8).start - 500, end: fragment(8).start - 100 };
  expect((await sys.postJson(ONE, key, frs)).body.accepted).toHaveLength(9);
  for (let i = 0; i < BIG_N; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, BIG_N - i) }, (_, j) =>
      fragment(i + j + 1, `big caption number ${i + j + 1} of the day`),
    );
    expect((await sys.postJson(BIG, key, batch)).status).toBe(200);
  }
  await waitFor('rows', async () => (await sys.fragments(ONE)).length === 9 && (await sys.fragments(BIG)).length === BIG_N, 60_000);
  const rows = await sys.db
    .selectFrom('caption_fragments')
    .select(['start_ms', 'end_ms', 'text', 'partition', 'offset'])
    .where('channel', '=', ONE)
    .orderBy('start_ms')
    .orderBy('offset')
    .execute();
  stored = rows.map((r) => ({ start: r.start_ms, end: r.end_ms, text: r.text, position: `${r.partition}:${r.offset}` }));
}, 180_000);
afterAll(() => sys?.stop());

const visible = () => stored.filter((s) => s.text.trim() !== '');
const vttCues = (body: string, writer: 'castlog' | 'ffmpeg' = 'castlog') => {
  const parsed = vttParser.parse(body);
  // ffmpeg writes a caption's "&" unescaped, which a strict parser flags and keeps as text.
  if (writer === 'castlog') expect(parsed.errors).toEqual([]);
  else expect(parsed.errors.every((e) => e.message === 'Incorrect escape.')).toBe(true);
  return parsed.cues.map((c) => ({
    id: c.id,
    start: Math.round(c.startTime * 1000),
    end: Math.round(c.endTime * 1000),
    text: c.tree.children.map((n) => n.value ?? '').join(''),
  }));
};

describe('GET /v1/channels/{channel}/captions.vtt|srt|txt', () => {
  it('WebVTT parsed back equals the stored fragments, in time order, times relative to the first', async () => {
    const r = await get(`/v1/channels/${ONE}/captions.vtt`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/vtt; charset=utf-8');
    expect(r.headers.get('content-disposition')).toBe(`attachment; filename="${ONE}.vtt"`);
    const body = await r.text();
    expect(body.startsWith('WEBVTT\n')).toBe(true);
    const origin = visible()[0]!.start;
    expect(vttCues(body)).toEqual(visible().map((s) => ({ id: s.position, start: s.start - origin, end: s.end - origin, text: s.text })));
    expect(body).not.toMatch(/-->.*-->/); // only timing lines hold an arrow
    expect(
      visible()
        .map((s) => s.text)
        .slice(0, 2),
    ).toEqual(['Good evening.', TEXTS[2]]);
  });

  it('SRT parsed back equals the stored fragments (with the documented look-alikes for < > { } \\ and "-- >")', async () => {
    const from = fragment(1).start - 2000;
    const r = await get(`/v1/channels/${ONE}/captions.srt?from=${from}`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/x-subrip; charset=utf-8');
    expect(r.headers.get('content-disposition')).toMatch(new RegExp(`^attachment; filename="${ONE}_\\d{8}T\\d{6}Z-end\\.srt"$`));
    const cues = new SrtParser().fromSrt(await r.text());
    expect(
      cues.map((c) => ({ id: c.id, start: Math.round(c.startSeconds * 1000), end: Math.round(c.endSeconds * 1000), text: c.text })),
    ).toEqual(
      visible().map((s, i) => ({
        id: String(i + 1),
        start: s.start - from,
        end: s.end - from,
        text: srtText(s.text).replace(/\r\n/g, '\n'),
      })),
    );
  });

  it('survives a round trip through ffmpeg: SRT to WebVTT and WebVTT to SRT, cue text and times', async () => {
    const from = fragment(1).start - 2000;
    const dir = await mkdtemp(join(tmpdir(), 'castlog-export-'));
    try {
      for (const format of ['srt', 'vtt'] as const) {
        await writeFile(join(dir, `in.${format}`), await (await get(`/v1/channels/${ONE}/captions.${format}?from=${from}`)).text());
      }
      await exec('ffmpeg', ['-v', 'error', '-y', '-i', join(dir, 'in.srt'), join(dir, 'from-srt.vtt')]);
      await exec('ffmpeg', ['-v', 'error', '-y', '-i', join(dir, 'in.vtt'), join(dir, 'from-vtt.srt')]);
      const expected = visible().map((s) => ({ start: s.start - from, end: s.end - from }));
      // SRT → WebVTT: what an SRT reader shows, the documented look-alikes included.
      const fromSrt = vttCues(await readFile(join(dir, 'from-srt.vtt'), 'utf8'), 'ffmpeg');
      expect(fromSrt.map((c) => ({ start: c.start, end: c.end, text: c.text }))).toEqual(
        expected.map((e, i) => ({ ...e, text: srtText(visible()[i]!.text).replace(/\r\n/g, '\n') })),
      );
      expect(fromSrt.map((c) => c.text).join(' ')).toMatch(/‹b›live‹\/b›/);
      // WebVTT → SRT: the caption's own characters come back.
      const fromVtt = new SrtParser().fromSrt(await readFile(join(dir, 'from-vtt.srt'), 'utf8'));
      expect(
        fromVtt.map((c) => ({ start: Math.round(c.startSeconds * 1000), end: Math.round(c.endSeconds * 1000), text: c.text })),
      ).toEqual(expected.map((e, i) => ({ ...e, text: visible()[i]!.text })));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('text: one line per caption with its time', async () => {
    const r = await get(`/v1/channels/${ONE}/captions.txt`);
    expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect((await r.text()).split('\n').filter(Boolean)).toEqual(
      visible().map((s) => `[${new Date(s.start).toISOString()}] ${s.text.split('\n').join(' ')}`),
    );
  });

  it('from/to as ms or ISO select by start time; cue times count from "from"', async () => {
    const from = fragment(3).start;
    const to = fragment(7).start;
    for (const q of [`from=${from}&to=${to}`, `from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`]) {
      const r = await get(`/v1/channels/${ONE}/captions.vtt?${q}`);
      const cues = vttCues(await r.text());
      expect(cues.map((c) => c.text)).toEqual([TEXTS[3], TEXTS[4], TEXTS[6]]);
      expect(cues[0]!.start).toBe(0);
    }
  });

  it('an empty range or an unknown channel gives a valid empty file', async () => {
    const vtt = await get(`/v1/channels/${ONE}/captions.vtt?from=1000&to=2000`);
    expect(vtt.status).toBe(200);
    expect(vttCues(await vtt.text())).toEqual([]);
    const srt = await get('/v1/channels/nobody.here/captions.srt');
    expect(srt.status).toBe(200);
    expect(new SrtParser().fromSrt(await srt.text())).toEqual([]);
    expect(await (await get('/v1/channels/nobody.here/captions.txt')).text()).toBe('');
  });

  it('streams a large range: chunked, the first chunk before the rest, every cue there', async () => {
    const r = await get(`/v1/channels/${BIG}/captions.vtt`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-length')).toBeNull();
    expect(r.headers.get('transfer-encoding')).toBe('chunked');
    const reader = r.body!.getReader();
    const first = await reader.read();
    const firstText = new TextDecoder().decode(first.value);
    expect(firstText.startsWith('WEBVTT')).toBe(true);
    let rest = '';
    let chunks = 1;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks++;
      rest += new TextDecoder().decode(value, { stream: true });
    }
    const body = firstText + rest;
    expect(firstText.length).toBeLessThan(body.length / 2);
    expect(chunks).toBeGreaterThan(1);
    const cues = vttCues(body);
    expect(cues).toHaveLength(BIG_N);
    expect(cues.at(-1)!.text).toBe(`big caption number ${BIG_N} of the day`);
  });

  it('a client that goes away mid-export leaves the API serving', async () => {
    const ac = new AbortController();
    const r = await fetch(`${sys.api}/v1/channels/${BIG}/captions.srt`, { signal: ac.signal });
    await r.body!.getReader().read();
    ac.abort();
    expect((await get('/healthz')).status).toBe(200);
    expect((await get(`/v1/channels/${ONE}/captions.txt`)).status).toBe(200);
  });

  it('renders lazily: one page read per piece written', async () => {
    let pulled = 0;
    async function* pages() {
      for (let p = 0; p < 1000; p++) {
        pulled++;
        yield [{ partition: 0, offset: p, start_ms: p * 1000, end_ms: p * 1000 + 500, text: `page ${p}` }];
      }
    }
    const out = renderExport('vtt', 'x', 0, pages());
    expect((await out.next()).value).toContain('page 0');
    expect(pulled).toBe(1);
    await out.return(undefined);
  });

  it('rejects bad parameters with a 400 naming the field', async () => {
    const cases: [string, string][] = [
      [`/v1/channels/BAD/captions.vtt`, 'channel'],
      [`/v1/channels/${ONE}/captions.srt?from=soon`, 'from'],
      [`/v1/channels/${ONE}/captions.txt?to=2024-13-45T99:00`, 'to'],
      [`/v1/channels/${ONE}/captions.vtt?from=2000&to=1000`, 'to'],
      [`/v1/channels/${ONE}/captions.vtt?colour=blue`, 'colour'],
      [`/v1/channels/${ONE}/captions.vtt?from=1&from=2`, 'from'],
    ];
    for (const [path, field] of cases) {
      const r = await get(path);
      expect(r.status, path).toBe(400);
      expect(r.headers.get('content-type'), path).toMatch(/^application\/problem\+json/);
      const body = (await r.json()) as { field: string; error: string };
      expect(body.field, path).toBe(field);
      expect(body.error, path).toMatch(new RegExp(`^${field}: `));
    }
    expect((await get(`/v1/channels/${ONE}/captions.doc`)).status).toBe(404);
  });
});
