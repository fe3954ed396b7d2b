// Caption export: GET /v1/channels/{channel}/captions.vtt | .srt | .txt with from/to. The file is
// streamed: keyset pages of the read model are written as they are read, pulled by the socket (a
// slow client slows the reads), so a day's export starts at once and holds one page in memory.
import { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import { CHANNEL_ID_RULE, isChannelId } from '../../domain/captions/channel.ts';
import { formatPosition } from '../../domain/position.ts';
import { parseTime } from '../../domain/time.ts';
import { fragmentsByTime } from '../../projections/captions/queries.ts';
import { badRequest } from './errors.ts';
import type { Reads } from './reads.ts';
import { channelParam, media, params } from './api-schemas.ts';

export const EXPORT_PAGE = 1000;

interface Row {
  partition: number;
  offset: number;
  start_ms: number;
  end_ms: number;
  text: string;
}

export type ExportFormat = 'vtt' | 'srt' | 'txt';

const CONTENT_TYPES: Record<ExportFormat, string> = {
  vtt: 'text/vtt; charset=utf-8',
  srt: 'application/x-subrip; charset=utf-8',
  txt: 'text/plain; charset=utf-8',
};

/** 3723004 -> "01:02:03.004" (WebVTT) or "01:02:03,004" (SRT); hours grow past two digits as needed. */
export function cueTime(ms: number, sep: '.' | ','): string {
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor(ms / 60_000) % 60;
  const s = Math.floor(ms / 1000) % 60;
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(s)}${sep}${pad(ms % 1000, 3)}`;
}

/** The caption's lines, none blank (a blank line would end the cue early). */
const lines = (text: string): string[] =>
  text
    .split(/\r\n|\r|\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '');

/** WebVTT cue text: &, < and > as character references, so no tag, entity or "-->" can appear. */
export const vttText = (text: string): string =>
  lines(text)
    .map((l) => l.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;'))
    .join('\n');

/**
 * SRT has no escapes, and its readers take <…> as HTML-like tags and {\…} as styling, so a caption
 * saying "wages <fell>" would lose a word. Those characters are written as look-alikes that no
 * reader interprets: < > as ‹ › (U+2039, U+203A), { } as ｛ ｝ and \ as ＼ (fullwidth). With no ">"
 * left, no "-->" in a caption can read as a timing line.
 */
export const SRT_SUBSTITUTES: Readonly<Record<string, string>> = {
  '<': '\u2039',
  '>': '\u203a',
  '{': '\uff5b',
  '}': '\uff5d',
  '\\': '\uff3c',
};

export const srtText = (text: string): string =>
  lines(text)
    .map((l) => l.replace(/[<>{}\\]/g, (c) => SRT_SUBSTITUTES[c]!))
    .join('\r\n');

const compactIso = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');

export function exportFilename(channel: string, format: ExportFormat, from?: number, to?: number): string {
  const range =
    from === undefined && to === undefined
      ? ''
      : `_${from === undefined ? 'start' : compactIso(from)}-${to === undefined ? 'end' : compactIso(to)}`;
  return `${channel}${range}.${format}`;
}

/**
 * The file, piece by piece. Cue times are relative to `from`, or to the first caption when there
 * is no `from` (a subtitle file's times count from the start of its media). Captions with no text
 * are left out: an empty cue shows nothing and some SRT readers stop at one.
 */
export async function* renderExport(
  format: ExportFormat,
  channel: string,
  from: number | undefined,
  pages: AsyncIterable<Row[]>,
): AsyncGenerator<string> {
  let origin = from;
  let n = 0;
  let headerDone = false;
  for await (const rows of pages) {
    let out = '';
    for (const r of rows) {
      if (origin === undefined) origin = r.start_ms;
      if (!headerDone) {
        out += header(format, channel, origin);
        headerDone = true;
      }
      if (lines(r.text).length === 0) continue;
      n++;
      const start = r.start_ms - origin;
      // WebVTT wants each cue to end after it starts; an instant caption lasts a millisecond.
      const end = Math.max(r.end_ms, r.start_ms + 1) - origin;
      if (format === 'vtt') out += `${formatPosition(r)}\n${cueTime(start, '.')} --> ${cueTime(end, '.')}\n${vttText(r.text)}\n\n`;
      else if (format === 'srt') out += `${n}\r\n${cueTime(start, ',')} --> ${cueTime(end, ',')}\r\n${srtText(r.text)}\r\n\r\n`;
      else out += `[${new Date(r.start_ms).toISOString()}] ${lines(r.text).join(' ')}\n`;
    }
    if (out) yield out;
  }
  if (!headerDone) {
    const h = header(format, channel, origin);
    if (h) yield h;
  }
}

function header(format: ExportFormat, channel: string, origin: number | undefined): string {
  if (format !== 'vtt') return '';
  const note = origin === undefined ? `channel ${channel}` : `channel ${channel}, cue times from ${new Date(origin).toISOString()}`;
  return `WEBVTT\n\nNOTE ${note}\n\n`;
}

export function exportRoutes(reads: Reads): FastifyPluginAsync {
  /** Keyset pages in (start, position) order: cues must not go back in time. */
  const page = (
    channel: string,
    from: number | undefined,
    to: number | undefined,
    after: { start: number; offset: number } | undefined,
  ): Promise<Row[]> => reads.run((db) => fragmentsByTime(db, channel, { from, to }, after, EXPORT_PAGE));

  return async (app) => {
    for (const format of ['vtt', 'srt', 'txt'] as const) {
      app.get<{ Params: { channel: string }; Querystring: { from?: string; to?: string } }>(
        `/:channel/captions.${format}`,
        {
          schema: {
            summary: `The captions of a channel as a ${format.toUpperCase()} file (cue times from "from", or from the first caption)`,
            params: params(channelParam),
            response: { 200: media(`The file (an attachment), streamed`, [CONTENT_TYPES[format].split(';')[0]!]) },
            querystring: { type: 'object', additionalProperties: false, properties: { from: { type: 'string' }, to: { type: 'string' } } },
          },
        },
        async (req, reply) => {
          const { channel } = req.params;
          if (!isChannelId(channel)) throw badRequest('channel', CHANNEL_ID_RULE);
          const from = parseTime('from', req.query.from);
          const to = parseTime('to', req.query.to);
          if (from !== undefined && to !== undefined && to < from) throw badRequest('to', 'must not be before from');
          // The first page before any header: a database that cannot answer is a clean error
          // status, not a file cut short.
          const first = await page(channel, from, to, undefined);
          async function* pages(): AsyncGenerator<Row[]> {
            let rows = first;
            for (;;) {
              yield rows;
              if (rows.length < EXPORT_PAGE) return;
              const last = rows.at(-1)!;
              rows = await page(channel, from, to, { start: last.start_ms, offset: last.offset });
            }
          }
          const body = Readable.from(renderExport(format, channel, from, pages()), { objectMode: false, highWaterMark: 64 * 1024 });
          body.on('error', (err) => req.log.warn({ err, channel }, 'export stream failed'));
          return reply
            .type(CONTENT_TYPES[format])
            .header('content-disposition', `attachment; filename="${exportFilename(channel, format, from, to)}"`)
            .header('cache-control', 'no-store')
            .send(body);
        },
      );
    }
  };
}
