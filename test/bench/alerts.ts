// Scenario: keyword alerts. How many captions a second the matcher's index tests against 100,000
// saved alerts on one core, against the naive loop that tries every alert on every caption (same
// alerts, same captions, same run). Postgres makes the documents and queries exactly as the
// matcher gets them (castlog_search_vector / castlog_search_query); the matching itself is timed
// alone, in this process.
//
// Knobs: BENCH_ALERTS (100000; 20000 quick), BENCH_ALERT_CAPTIONS (20000; 5000 quick),
// BENCH_ALERT_NAIVE_CAPTIONS (200; 50 quick). Runnable on its own: `tsx test/bench/alerts.ts`.
import { sql } from 'kysely';
import { AlertIndex } from '../../domain/alerts/matcher.ts';
import { parseTsVector } from '../../domain/alerts/tsquery.ts';
import { System } from '../support/system.ts';
import { knob, now } from './common.ts';
import { vocabulary } from './search.ts';

export interface AlertsWorkload {
  /** Words captions and alerts are made of. */
  vocabulary: number;
  alerts: number;
  captions: number;
  indexBuildSeconds: number;
  indexedPerSec: number;
  naivePerSec: number;
  ratio: number;
  matchesPerCaption: number;
}

export interface AlertsResult {
  /** 50,000 words: alerts on names and topics, a few matches per caption. */
  typical: AlertsWorkload;
  /** 5,000 words: every word watched by some twenty alerts, hundreds of matches per caption. */
  dense: AlertsWorkload;
}

/** A deterministic generator (the same alerts and captions in every run). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32;
}

export async function alertsBench(log: (s: string) => void): Promise<AlertsResult> {
  const sys = await System.create();
  try {
    return { typical: await workload(sys, 50_000, log), dense: await workload(sys, 5_000, log) };
  } finally {
    await sys.stop();
  }
}

async function workload(sys: System, vocabularySize: number, log: (s: string) => void): Promise<AlertsWorkload> {
  const nAlerts = knob('ALERTS', 100_000, 20_000);
  const nCaptions = knob('ALERT_CAPTIONS', 20_000, 5_000);
  const nNaive = knob('ALERT_NAIVE_CAPTIONS', 200, 50);
  const vocab = vocabulary(vocabularySize);
  const rnd = random(7);
  // Captions: word rank log-uniform, as in real text. Alerts: what newsrooms watch for — names and
  // topics, any word past the 30 most common, equally likely.
  const word = () => vocab[Math.floor(Math.pow(vocab.length, rnd()))]!;
  const topic = () => vocab[30 + Math.floor(rnd() * (vocab.length - 30))]!;
  const queries = Array.from({ length: nAlerts }, (_, i) => {
    const kind = i % 10;
    if (kind < 5) return topic();
    if (kind < 8) return `${topic()} ${topic()}`;
    if (kind < 9) return `"${topic()} ${topic()}"`;
    return `${topic()} or ${topic()} -${topic()}`;
  });
  const captions = Array.from({ length: nCaptions }, () => Array.from({ length: 6 + Math.floor(rnd() * 9) }, word).join(' '));
  {
    log(
      `alerts (${vocabularySize.toLocaleString()} words): ${nAlerts.toLocaleString()} alerts, ` +
        `${nCaptions.toLocaleString()} captions: asking Postgres for queries and documents`,
    );
    const tsqueries: string[] = [];
    for (let i = 0; i < queries.length; i += 5000) {
      const { rows } = await sql<{ q: string }>`SELECT public.castlog_search_query('en', q)::text AS q
        FROM unnest(${queries.slice(i, i + 5000)}::text[]) WITH ORDINALITY AS x(q, i) ORDER BY x.i`.execute(sys.db);
      tsqueries.push(...rows.map((r) => r.q));
    }
    const docs: string[] = [];
    for (let i = 0; i < captions.length; i += 5000) {
      const { rows } = await sql<{ v: string }>`SELECT public.castlog_search_vector('en', t)::text AS v
        FROM unnest(${captions.slice(i, i + 5000)}::text[]) WITH ORDINALITY AS x(t, i) ORDER BY x.i`.execute(sys.db);
      docs.push(...rows.map((r) => r.v));
    }
    const index = new AlertIndex();
    const t0 = now();
    tsqueries.forEach((q, i) => index.add({ alertId: `a${i}`, userId: 'u', tsquery: q, channels: [], createdAt: 0 }));
    const indexBuildSeconds = (now() - t0) / 1000;
    const parsed = docs.map((d) => ({ channel: 'bench', receivedAt: 1, doc: parseTsVector(d) }));
    // The index: every caption, parse included (the matcher parses each document it gets).
    let matched = 0;
    const t1 = now();
    for (const d of docs) matched += index.match([{ channel: 'bench', receivedAt: 1, doc: parseTsVector(d) }]).length;
    const indexedPerSec = nCaptions / ((now() - t1) / 1000);
    // The naive loop: every alert on a sample of the captions.
    const t2 = now();
    for (const c of parsed.slice(0, nNaive)) index.matchNaive(c);
    const naivePerSec = nNaive / ((now() - t2) / 1000);
    const result = {
      vocabulary: vocabularySize,
      alerts: index.size,
      captions: nCaptions,
      indexBuildSeconds,
      indexedPerSec,
      naivePerSec,
      ratio: indexedPerSec / naivePerSec,
      matchesPerCaption: matched / nCaptions,
    };
    log(
      `alerts (${vocabularySize.toLocaleString()} words): index ${Math.round(indexedPerSec).toLocaleString()} captions/s, ` +
        `naive loop ${naivePerSec.toFixed(1)} captions/s (${result.ratio.toFixed(0)}x), ` +
        `${result.matchesPerCaption.toFixed(2)} matches per caption, index built in ${indexBuildSeconds.toFixed(2)} s`,
    );
    return result;
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await alertsBench((s) => console.error(s));
  console.log(JSON.stringify(r, null, 2));
}
