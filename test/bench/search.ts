// Scenario: full-text search latency over N caption fragments (1M by default) through the real API
// (GET /v1/search), one query at a time, by kind of query: a rare word, a mid-frequency word, a
// very common word (hundreds of thousands of hits to rank), two words, a phrase, filtered by
// channel or by an hour, and a second page.
//
// The fragments go straight into the serving version's table (captions_v1) with one INSERT ...
// SELECT per 100k rows (the generated search_vector is computed by Postgres as on any insert); the
// GIN index and the repeat index are dropped while loading and built once after, then VACUUM ANALYZE. Words are drawn
// log-uniformly from a 5,000-word vocabulary (rank r has probability ~1/r, as in real text), so the
// frequency classes below have known sizes.
//
// Knobs: BENCH_SEARCH_FRAGMENTS (1,000,000; 100,000 quick), BENCH_SEARCH_QUERIES per kind (40; 10 quick).
// Runnable on its own: `tsx test/bench/search.ts`.
import { sql } from 'kysely';
import { addRepeatsIndex } from '../../projections/captions/search-sql.ts';
import { TOPICS } from '../../schemas/catalog.ts';
import { System } from '../support/system.ts';
import { histogram, knob, latency, now, type Latency } from './common.ts';
import { dropSystem } from './ingest.ts';

export interface SearchKindResult extends Latency {
  /** Mean hits per query (the size of what had to be ranked), counted in SQL after the run. */
  meanHits: number;
}

export interface SearchResult {
  fragments: number;
  loadSeconds: number;
  indexSeconds: number;
  indexMB: number;
  /** The repeat index (search-sql.ts, REPEATS_SQL) the one-word cut-off reads, built after the GIN index. */
  repeatsIndexSeconds: number;
  repeatsIndexMB: number;
  queriesPerKind: number;
  overall: Latency;
  kinds: Record<string, SearchKindResult>;
}

const START = 1_700_000_000_000;
const CHANNELS = 100;

/**
 * News words first (the most frequent ranks: what people search for), then English stop words
 * (frequent too, but not searchable in English captions), then made-up words for the long tail.
 */
export function vocabulary(size: number): string[] {
  const common = (
    'weather rain coast minister government election football police council harbour bridge traffic market prices energy storm wind snow ' +
    'morning tonight news report president parliament school hospital the and to of a in is that for it on was with he as at by this be ' +
    'from have or are an they which one you were her all she there would their we him been has when who will more no if out so said what ' +
    'up its about into than them can only other new some could time these two may then do first any my now such like our over man me ' +
    'even most made after also did many before must through back years where much your way well down should because each just those ' +
    'people how too little state good very make world still own see men work long get here between both life being under never day same ' +
    'another know while last might us great old year off come since against go came right used take three northern evening tomorrow'
  ).split(' ');
  const syll = ['ka', 'lo', 'mi', 'ra', 'to', 'ne', 'su', 'vi', 'do', 'pe', 'gu', 'fa', 'ri', 'mo', 'zu', 'be'];
  const out = [...new Set(common)];
  for (let i = 0; out.length < size; i++) {
    let w = '';
    for (let n = i, k = 0; k < 3 || n > 0; k++, n = Math.floor(n / syll.length)) w += syll[n % syll.length];
    out.push(`${w}n`);
  }
  return out;
}

async function load(
  sys: System,
  n: number,
  vocab: string[],
  log: (s: string) => void,
): Promise<Pick<SearchResult, 'loadSeconds' | 'indexSeconds' | 'indexMB' | 'repeatsIndexSeconds' | 'repeatsIndexMB'>> {
  const table = sql.id('captions_v1', 'caption_fragments');
  await sql`DROP INDEX IF EXISTS captions_v1.caption_fragments_search`.execute(sys.db);
  await sql`DROP INDEX IF EXISTS captions_v1.caption_fragments_repeats`.execute(sys.db);
  await sql`SELECT setseed(0.42)`.execute(sys.db);
  const t0 = now();
  const chunk = 100_000;
  for (let lo = 0; lo < n; lo += chunk) {
    const hi = Math.min(n, lo + chunk);
    // 6 to 14 words per caption, word rank log-uniform in [1, V]: floor(V ^ random()).
    // A channel's rows in a partition the topic has (a cursor naming another is refused: a 400), at offset i.
    await sql`
      INSERT INTO ${table} (channel, partition, "offset", station, seq, text, start_ms, end_ms, mode, lang, received_at_ms)
      SELECT 'bench.ch' || lpad((i % ${CHANNELS})::text, 3, '0'), (i % ${CHANNELS} % ${TOPICS.captions.partitions})::int, i,
             'bench-station',
             i / ${CHANNELS} + 1,
             (SELECT string_agg((${vocab}::text[])[floor(power(${vocab.length}::float8, random()))::int], ' ')
              FROM generate_series(1, 6 + (i % 9)::int) AS w(k) WHERE i >= 0),
             ${START} + i * 100, ${START} + i * 100 + 90, 'rollup', 'en', ${START} + i * 100
      FROM generate_series(${lo}::bigint, ${hi - 1}::bigint) AS s(i)`.execute(sys.db);
    log(`search: loaded ${hi.toLocaleString()} fragments (${((now() - t0) / 1000).toFixed(1)}s)`);
  }
  const loadSeconds = (now() - t0) / 1000;
  const t1 = now();
  await sql`SET maintenance_work_mem = '256MB'`.execute(sys.db);
  await sql`CREATE INDEX caption_fragments_search ON ${table} USING gin (search_vector) WITH (fastupdate = on)`.execute(sys.db);
  const indexSeconds = (now() - t1) / 1000;
  const t2 = now();
  await sys.db.connection().execute(async (c) => {
    await sql`SET maintenance_work_mem = '256MB'`.execute(c);
    await addRepeatsIndex(c, 'captions_v1');
  });
  const repeatsIndexSeconds = (now() - t2) / 1000;
  await sql`VACUUM ANALYZE ${table}`.execute(sys.db);
  const mb = async (index: string) =>
    Math.round(
      Number((await sql<{ mb: number }>`SELECT pg_relation_size(${index}::regclass) / 1048576.0 AS mb`.execute(sys.db)).rows[0]!.mb),
    );
  return {
    loadSeconds: Math.round(loadSeconds * 10) / 10,
    indexSeconds: Math.round(indexSeconds * 10) / 10,
    indexMB: await mb('captions_v1.caption_fragments_search'),
    repeatsIndexSeconds: Math.round(repeatsIndexSeconds * 10) / 10,
    repeatsIndexMB: await mb('captions_v1.caption_fragments_repeats'),
  };
}

export async function searchBench(log: (s: string) => void): Promise<SearchResult> {
  const n = knob('SEARCH_FRAGMENTS', 1_000_000, 100_000);
  const perKind = knob('SEARCH_QUERIES', 40, 10);
  const vocab = vocabulary(5000);
  const sys = await System.create();
  try {
    log(`search: loading ${n.toLocaleString()} fragments into captions_v1`);
    const loaded = await load(sys, n, vocab, log);
    log(
      `search: loaded in ${loaded.loadSeconds}s, GIN index built in ${loaded.indexSeconds}s (${loaded.indexMB} MB), ` +
        `repeat index in ${loaded.repeatsIndexSeconds}s (${loaded.repeatsIndexMB} MB); starting the api`,
    );
    await sys.start('api');

    let r = 1;
    const pick = (lo: number, hi: number) => vocab[lo + Math.floor(((r = (r * 48271) % 2147483647) / 2147483647) * (hi - lo))]!;
    const hour = 3_600_000;
    const kinds: Record<string, () => Record<string, string>> = {
      'rare word': () => ({ q: pick(2000, 5000) }),
      'mid word': () => ({ q: pick(60, 250) }),
      'common word': () => ({ q: pick(0, 26) }),
      'two words': () => ({ q: `${pick(0, 26)} ${pick(60, 250)}` }),
      phrase: () => ({ q: `"${pick(0, 26)} ${pick(0, 26)}"` }),
      'common + channel': () => ({ q: pick(0, 26), channel: `bench.ch${String(Math.floor(Math.random() * CHANNELS)).padStart(3, '0')}` }),
      'common + 1 hour': () => {
        const from = START + Math.floor(Math.random() * (n * 100 - hour));
        return { q: pick(0, 26), from: String(from), to: String(from + hour) };
      },
      'mid, page 2': () => ({ q: pick(60, 250), page: '2' }),
    };
    const all = histogram();
    const results: Record<string, SearchKindResult> = {};
    for (const [kind, make] of Object.entries(kinds)) {
      const h = histogram();
      const asked: Record<string, string>[] = [];
      for (let i = 0; i < perKind + 3; i++) {
        const { page, ...params } = make();
        let url = `${sys.api}/v1/search?${new URLSearchParams({ ...params, limit: '20' })}`;
        if (page) {
          const first = (await (await fetch(url)).json()) as { next: string | null };
          if (first.next) url += `&after=${first.next}`;
        }
        const t = now();
        const res = await fetch(url);
        const body = await res.text();
        const ms = now() - t;
        if (res.status !== 200) throw new Error(`search ${url} answered ${res.status}: ${body}`);
        if (i < 3) continue; // warm-up
        h.recordValue(Math.max(1, Math.round(ms * 1000)));
        all.recordValue(Math.max(1, Math.round(ms * 1000)));
        asked.push(params);
      }
      let hits = 0;
      for (const p of asked.slice(0, 10)) {
        // The query as a constant, as the API does (a function call here would run per row).
        const { rows: tq } = await sql<{ tsq: string }>`SELECT public.castlog_search_query(NULL, ${p.q!})::text AS tsq`.execute(sys.db);
        const filters = [sql`search_vector @@ ${tq[0]!.tsq}::tsquery`];
        if (p.channel) filters.push(sql`channel = ${p.channel}`);
        if (p.from) filters.push(sql`start_ms >= ${Number(p.from)} AND start_ms < ${Number(p.to)}`);
        const { rows } = await sql<{
          n: number;
        }>`SELECT count(*)::int AS n FROM caption_fragments WHERE ${sql.join(filters, sql` AND `)}`.execute(sys.db);
        hits += rows[0]!.n;
      }
      results[kind] = { ...latency(h), meanHits: Math.round(hits / Math.min(10, asked.length)) };
      log(`search: ${kind}: p50 ${results[kind].p50} ms, p99 ${results[kind].p99} ms, ~${results[kind].meanHits.toLocaleString()} hits`);
    }
    return { fragments: n, ...loaded, queriesPerKind: perKind, overall: latency(all), kinds: results };
  } finally {
    await sys.stop();
    // The database is large: drop it rather than leave it behind.
    await dropSystem(sys);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const t = Date.now();
  console.log(JSON.stringify(await searchBench((s) => console.error(`[${((Date.now() - t) / 1000).toFixed(1)}s] ${s}`)), null, 2));
  process.exit(0);
}
