// How the apps read the caption read model: history, search, export, the fanout's archive and
// replays, verify. Every query reads the public views (the serving version) and takes the caller's
// kysely instance, so the API can run the expensive ones on its read pool (apps/api/reads.ts).
import { sql, type Kysely, type Selectable } from 'kysely';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';
import type { ChannelsTable, CaptionFragmentsTable, Database } from '../database.ts';
import { servingNextOffset } from '../versions.ts';
import { FRAGMENT_COLUMNS } from './tables.ts';
import { searchHitsByCutoff } from './search-cutoff.ts';
import { phraseHitsByCutoff } from './search-phrase-cutoff.ts';
import { headlineSql } from './search-sql.ts';

type Db = Kysely<Database>;

/** A fragment as readers get it: the columns of FRAGMENT_COLUMNS. */
export type FragmentRow = Pick<CaptionFragmentsTable, (typeof FRAGMENT_COLUMNS)[number]>;

/** The fragment a row holds, in the event's own terms (start and end without the _ms). */
export const fragmentOf = (
  r: FragmentRow,
): Pick<CaptionFragmentReceived, 'channel' | 'station' | 'seq' | 'text' | 'start' | 'end' | 'mode' | 'lang'> => ({
  channel: r.channel,
  station: r.station,
  seq: r.seq,
  text: r.text,
  start: r.start_ms,
  end: r.end_ms,
  mode: r.mode,
  lang: r.lang,
});

/** Every channel, by id, with its fragment count, last fragment time and last position. */
export function channelList(db: Db): Promise<Selectable<ChannelsTable>[]> {
  return db.selectFrom('channels').selectAll().orderBy('id').execute();
}

/**
 * A channel's fragments in log order: after `afterOffset` in its partition, starting within
 * [from, to) where given, at most `limit`.
 */
export function channelFragments(
  db: Db,
  channel: string,
  q: { afterOffset?: number; from?: number; to?: number },
  limit: number,
): Promise<FragmentRow[]> {
  let query = db.selectFrom('caption_fragments').select(FRAGMENT_COLUMNS).where('channel', '=', channel);
  if (q.afterOffset !== undefined) query = query.where('offset', '>', q.afterOffset);
  if (q.from !== undefined) query = query.where('start_ms', '>=', q.from);
  if (q.to !== undefined) query = query.where('start_ms', '<', q.to);
  return query.orderBy('offset').limit(limit).execute();
}

/**
 * A channel's fragments starting within [from, to) where given, in (start, offset) order — time
 * order, as subtitle files and replays need it — after the key `after`, at most `limit`: keyset
 * pages.
 */
export function fragmentsByTime(
  db: Db,
  channel: string,
  range: { from?: number; to?: number },
  after: { start: number; offset: number } | undefined,
  limit: number,
): Promise<FragmentRow[]> {
  let q = db.selectFrom('caption_fragments').select(FRAGMENT_COLUMNS).where('channel', '=', channel);
  if (range.from !== undefined) q = q.where('start_ms', '>=', range.from);
  if (range.to !== undefined) q = q.where('start_ms', '<', range.to);
  if (after) q = q.where(sql<boolean>`(start_ms, "offset") > (${after.start}, ${after.offset})`);
  return q.orderBy('start_ms').orderBy('offset').limit(limit).execute();
}

/**
 * A channel's fragments after `offset` in its partition (at most `limit`), and how far the serving
 * version has applied that partition. Both from one snapshot: a row committed between the two
 * reads cannot be skipped by a reader who continues from `appliedUpTo` in the log.
 */
export function fragmentsAfter(
  db: Db,
  channel: string,
  partition: number,
  offset: number,
  limit: number,
): Promise<{ rows: FragmentRow[]; appliedUpTo: number }> {
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .execute(async (trx) => {
      const rows = await trx
        .selectFrom('caption_fragments')
        .select(FRAGMENT_COLUMNS)
        .where('channel', '=', channel)
        .where('partition', '=', partition)
        .where('offset', '>', offset)
        .orderBy('offset')
        .limit(limit)
        .execute();
      return { rows, appliedUpTo: await servingNextOffset(trx, 'captions', 'captions', partition) };
    });
}

/** Every fragment, in (partition, offset) order, after the position `after`: `limit` at a time. */
export function fragmentsInLogOrder(db: Db, after: { partition: number; offset: number }, limit: number): Promise<FragmentRow[]> {
  return db
    .selectFrom('caption_fragments')
    .select(FRAGMENT_COLUMNS)
    .where((eb) =>
      eb.or([eb('partition', '>', after.partition), eb.and([eb('partition', '=', after.partition), eb('offset', '>', after.offset)])]),
    )
    .orderBy('partition')
    .orderBy('offset')
    .limit(limit)
    .execute();
}

/**
 * The full-text query for a search (see search-sql.ts for how languages meet), as text: computed
 * once, so the search statement gets it as a constant the planner can match to the GIN index.
 * Empty when q has nothing to look for. Postgres refuses a q it cannot make sense of (codes
 * XX, 54, 22): the caller says whose fault that is.
 */
export async function searchQuery(db: Db, lang: string | null, q: string): Promise<string> {
  const { rows } = await sql<{ tsq: string }>`SELECT public.castlog_search_query(${lang}, ${q})::text AS tsq`.execute(db);
  return rows[0]!.tsq;
}

export interface SearchHitRow extends Pick<
  CaptionFragmentsTable,
  'channel' | 'partition' | 'offset' | 'station' | 'seq' | 'text' | 'start_ms' | 'end_ms' | 'lang'
> {
  rank: number;
  /** The rank as Postgres wrote it (a real), for an exact cursor. */
  rank_text: string;
  /** The caption's words around the matches, each match between `marks.start` and `marks.stop`. */
  headline: string;
}

export interface SearchFilter {
  /** From searchQuery: not empty. */
  tsq: string;
  channel: string | null;
  from?: number;
  to?: number;
  /** The last hit of the previous page: hits rank below it, or equal and later in the log. */
  after?: { rank: string; partition: number; offset: number };
  limit: number;
  /** Characters the headline puts around matches; taken out of the caption's text first, so every one is a match's. */
  marks: { start: string; stop: string };
}

/** Hits of a search, best ranked (ts_rank_cd) first, then in log order, each with its headline. */
export async function searchHits(db: Db, f: SearchFilter): Promise<SearchHitRow[]> {
  // A one-word search or a phrase with many hits: its best hits without ranking them all
  // (search-cutoff.ts, search-phrase-cutoff.ts).
  const cut = (await searchHitsByCutoff(db, f, (trx, cap) => rankAll(trx, f, cap))) ?? (await phraseHitsByCutoff(db, f));
  return cut ?? (await rankAll(db, f)).rows;
}

/**
 * Every hit ranked, the page taken from them. With `cap`, at most cap + 1 hits are read: `hits` says
 * how many (past cap, the page is not the answer).
 */
export async function rankAll(db: Db, f: SearchFilter, cap?: number): Promise<{ rows: SearchHitRow[]; hits: number }> {
  const filters = [sql`f.search_vector @@ ${f.tsq}::tsquery`];
  if (f.channel !== null) filters.push(sql`f.channel = ${f.channel}`);
  if (f.from !== undefined) filters.push(sql`f.start_ms >= ${f.from}`);
  if (f.to !== undefined) filters.push(sql`f.start_ms < ${f.to}`);
  const page = f.after
    ? sql`WHERE h.rank < ${f.after.rank}::real
             OR (h.rank = ${f.after.rank}::real AND (h.partition, h."offset") > (${f.after.partition}, ${f.after.offset}))`
    : sql``;
  const { rows } = await sql<SearchHitRow & { hits: number }>`
    WITH hits AS (
      SELECT f.channel, f.partition, f."offset", f.station, f.seq, f.text, f.start_ms, f.end_ms, f.lang,
             ts_rank_cd(f.search_vector, ${f.tsq}::tsquery) AS rank
      FROM caption_fragments f
      WHERE ${sql.join(filters, sql` AND `)}
      ${cap === undefined ? sql`` : sql`LIMIT ${cap + 1}`}
    ), top AS (
      SELECT * FROM hits h ${page}
      ORDER BY h.rank DESC, h.partition, h."offset"
      LIMIT ${f.limit}
    )
    SELECT t.*, t.rank::text AS rank_text,
           ${headlineSql(sql.ref('t.text'), sql.ref('t.lang'), sql`${f.tsq}::tsquery`, f.marks)} AS headline,
           ${cap === undefined ? sql`0` : sql`(SELECT count(*) FROM hits)`}::int AS hits
    FROM top t
    ORDER BY t.rank DESC, t.partition, t."offset"`.execute(db);
  // With no row on the page, the count is lost with it: read it alone (only with a cap, so a small number).
  const hits =
    cap === undefined
      ? 0
      : rows.length
        ? rows[0]!.hits
        : (
            await sql<{ n: number }>`SELECT count(*)::int AS n FROM (SELECT 1 FROM caption_fragments f
              WHERE ${sql.join(filters, sql` AND `)} LIMIT ${cap + 1}) x`.execute(db)
          ).rows[0]!.n;
  return { rows: rows.map(({ hits: _, ...r }) => r), hits };
}
