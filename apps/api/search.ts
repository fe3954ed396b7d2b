// Full-text search over every caption in the read model: GET /v1/search. Ranked (ts_rank_cd),
// phrase queries (websearch syntax: "quoted phrase", -not, or), a highlighted snippet per hit,
// keyset pagination with an opaque cursor. How languages are matched: projections/captions/search-sql.ts.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { CHANNEL_ID_RULE, isChannelId } from '../../domain/captions/channel.ts';
import { formatPosition } from '../../domain/position.ts';
import { queryProblem } from '../../domain/captions/search-query.ts';
import { isBcp47, BCP47_RULE } from '../../domain/captions/fragment.ts';
import { parseTime } from '../../domain/time.ts';
import { isStatementTimeout } from '../../infra/db.ts';
import { searchHits, searchQuery } from '../../projections/captions/queries.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { badRequest, HttpError } from './errors.ts';
import type { Reads } from './reads.ts';
import { MARKS, snippetHtml } from '../../domain/captions/snippet.ts';
import { json, nullableString, obj, position } from './api-schemas.ts';

export const MAX_LIMIT = 100;
const DEFAULT_LIMIT = 20;
/** The largest rank a cursor may carry: ts_rank_cd is a real (float4). */
const MAX_RANK = 3.4e38;
const MIN_RANK = 1e-37;
export interface SearchHit {
  channel: string;
  position: string;
  station: string;
  seq: number;
  start: number;
  end: number;
  lang: string | null;
  text: string;
  /** HTML: the caption's words around the matches, escaped, matches in <mark>. */
  snippet: string;
  rank: number;
}

interface Cursor {
  rank: string;
  partition: number;
  offset: number;
}

/** The cursor names the search it belongs to, so a cursor of one search given to another is a 400, not a wrong page. */
export function fingerprint(parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 12);
}

export function encodeCursor(c: Cursor, fp: string): string {
  return Buffer.from(JSON.stringify([c.rank, c.partition, c.offset, fp])).toString('base64url');
}

function decodeCursor(text: string, fp: string): Cursor {
  const bad = () =>
    badRequest(
      'after',
      'is not a cursor of this search (use the "next" of the previous page, with the same q, lang, channel, from and to)',
    );
  if (text.length > 200 || !/^[A-Za-z0-9_-]+$/.test(text)) throw bad();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(v) || v.length !== 4) throw bad();
  const [rank, partition, offset, f] = v as unknown[];
  if (f !== fp) throw bad();
  // A rank Postgres wrote as a real: finite, and neither past a real's range nor under it.
  const n = typeof rank === 'string' && /^\d{1,40}(\.\d{1,40})?(e[-+]?\d{1,3})?$/.test(rank) ? Number(rank) : NaN;
  if (!(n >= 0 && n <= MAX_RANK && (n >= MIN_RANK || /^0(\.0+)?$/.test(rank as string)))) throw bad();
  if (!Number.isSafeInteger(partition) || (partition as number) < 0 || (partition as number) >= TOPICS.captions.partitions) throw bad();
  if (!Number.isSafeInteger(offset) || (offset as number) < -1) throw bad();
  return { rank: String(n), partition: partition as number, offset: offset as number };
}

interface Query {
  q?: string;
  lang?: string;
  channel?: string;
  from?: string;
  to?: string;
  limit?: number;
  after?: string;
}

export function searchRoutes(reads: Reads): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Querystring: Query }>(
      '/',
      {
        schema: {
          summary: 'Full-text search over every caption (websearch syntax), ranked, with highlighted snippets',
          response: {
            200: json(
              'A page of hits; next is the after of the next page, null at the end',
              obj({
                q: { type: 'string' },
                items: {
                  type: 'array',
                  items: obj(
                    {
                      channel: { type: 'string' },
                      position,
                      station: { type: 'string' },
                      seq: { type: 'integer' },
                      start: { type: 'integer' },
                      end: { type: 'integer' },
                      lang: nullableString,
                      text: { type: 'string' },
                      snippet: { type: 'string', description: 'HTML: escaped text, matches in <mark>' },
                      rank: { type: 'number' },
                    },
                    ['channel', 'position', 'station', 'seq', 'start', 'end', 'text', 'snippet', 'rank'],
                  ),
                },
                next: nullableString,
              }),
            ),
          },
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              q: { type: 'string' },
              lang: { type: 'string' },
              channel: { type: 'string' },
              from: { type: 'string' },
              to: { type: 'string' },
              limit: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT },
              after: { type: 'string' },
            },
          },
        },
      },
      async (req) => {
        const query = req.query;
        const q = (query.q ?? '').trim();
        const problem = queryProblem(q);
        if (problem) throw badRequest('q', problem);
        const lang = query.lang === undefined || query.lang === '' ? null : query.lang;
        if (lang !== null && !isBcp47(lang)) throw badRequest('lang', BCP47_RULE);
        const channel = query.channel === undefined || query.channel === '' ? null : query.channel;
        if (channel !== null && !isChannelId(channel)) throw badRequest('channel', CHANNEL_ID_RULE);
        const from = parseTime('from', query.from);
        const to = parseTime('to', query.to);
        if (from !== undefined && to !== undefined && to < from) throw badRequest('to', 'must not be before from');
        const limit = query.limit ?? DEFAULT_LIMIT;
        const fp = fingerprint([q, lang, channel, from ?? null, to ?? null]);
        const after = query.after === undefined || query.after === '' ? undefined : decodeCursor(query.after, fp);

        return reads
          .run(async (db) => {
            // Whatever Postgres cannot make of q is q's fault.
            const tsq = await searchQuery(db, lang, q).catch((err: unknown) => {
              if (isStatementTimeout(err) || !(err as { code?: string }).code?.match(/^(XX|54|22)/)) throw err;
              throw badRequest('q', 'is too complex to search for');
            });
            if (!tsq) throw badRequest('q', 'has no words to search for (only punctuation, operators or stop words)');
            const rows = await searchHits(db, { tsq, channel, from, to, after, limit: limit + 1, marks: MARKS });
            const shown = rows.slice(0, limit);
            const items: SearchHit[] = shown.map((r) => ({
              channel: r.channel,
              position: formatPosition(r),
              station: r.station,
              seq: r.seq,
              start: r.start_ms,
              end: r.end_ms,
              lang: r.lang,
              text: r.text,
              snippet: snippetHtml(r.headline),
              rank: r.rank,
            }));
            const last = shown.at(-1);
            const next =
              rows.length > limit && last
                ? encodeCursor({ rank: last.rank_text, partition: last.partition, offset: last.offset }, fp)
                : null;
            return { q, items, next };
          })
          .catch((err: unknown) => {
            if (isStatementTimeout(err)) throw new HttpError(503, 'q: the search took too long: narrow it with channel, from or to', 'q');
            throw err;
          });
      },
    );
  };
}
