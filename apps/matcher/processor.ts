// The matcher's work on a batch of captions, in one Postgres transaction with its positions (the
// projector's runner drives it, so a crash neither loses nor doubles a match): Postgres computes
// each caption's document (the tsvector search uses), the alert index says which alerts it
// matches — with the two captions before it from the same station, for phrases — and every match
// is recorded once, by (alert, caption), with the e-mail and webhook it causes. A station's repeat
// is dropped as every reader drops it; its last seq and recent captions are kept here, so a
// restart knows them.
import { sql, type Kysely, type Transaction } from 'kysely';
import { WINDOW, type CaptionToMatch } from '../../domain/alerts/matcher.ts';
import { parseTsVector } from '../../domain/alerts/tsquery.ts';
import { isRepeat, NO_SEQ } from '../../domain/captions/repeats.ts';
import { MARKS, snippetHtml } from '../../domain/captions/snippet.ts';
import { formatPosition } from '../../domain/position.ts';
import { headlineSql } from '../../projections/captions/search-sql.ts';
import type { Database } from '../../projections/database.ts';
import type { Projection } from '../../projections/projection.ts';
import type { AlertBook } from './alert-book.ts';

interface Recent {
  /** The caption's tsvector, as Postgres wrote it. */
  v: string;
  text: string;
  lang: string | null;
  receivedAt: number;
}

interface StationState {
  lastSeq: number;
  recent: Recent[];
}

export interface NewMatch {
  alertId: string;
  userId: string;
  partition: number;
  offset: number;
  channel: string;
  station: string;
  start: number;
  text: string;
  snippet: string;
}

async function createTables(db: Kysely<any>): Promise<void> {
  // Per station on a channel: the last seq (repeats) and the captions a phrase may begin in.
  await sql`CREATE TABLE window_state (channel text NOT NULL, station text NOT NULL, last_seq bigint NOT NULL, recent jsonb NOT NULL,
    CONSTRAINT window_state_pk PRIMARY KEY (channel, station))`.execute(db);
}

export function matcherProcessor(book: AlertBook, onMatches: (n: number) => void): Projection<'captions'> {
  return {
    name: 'matcher',
    topics: ['captions'],
    views: [],
    createTables,
    async apply(trx, records) {
      const captions = records.flatMap((r) => (r.event.type === 'CaptionFragmentReceived' ? [{ r, d: r.event.data }] : []));
      if (!captions.length) return;
      const vectors = await documents(
        trx,
        captions.map((c) => ({ text: c.d.text, lang: c.d.lang })),
      );
      const states = await loadStates(
        trx,
        captions.map((c) => [c.d.channel, c.d.station] as const),
      );
      const found: { m: Omit<NewMatch, 'snippet'>; tsquery: string; text: string; lang: string | null }[] = [];
      captions.forEach(({ r, d }, i) => {
        const key = `${d.channel}\u0000${d.station}`;
        const state = states.get(key) ?? { lastSeq: NO_SEQ, recent: [] };
        states.set(key, state);
        if (isRepeat(d.seq, state.lastSeq)) return;
        const current: Recent = { v: vectors[i]!, text: d.text, lang: d.lang, receivedAt: d.receivedAt };
        const window = [...state.recent, current];
        const docs: CaptionToMatch[] = window.map((w) => ({ channel: d.channel, receivedAt: d.receivedAt, doc: parseTsVector(w.v) }));
        for (const { alertId, across } of book.index.match(docs)) {
          const alert = book.get(alertId);
          if (!alert) continue;
          // A phrase that began earlier is shown with the captions it began in.
          const shown = across ? window.map((w) => w.text).join(' ') : d.text;
          found.push({
            m: {
              alertId,
              userId: alert.userId,
              partition: r.partition,
              offset: r.offset,
              channel: d.channel,
              station: d.station,
              start: d.start,
              text: d.text,
            },
            tsquery: alert.tsquery,
            text: shown,
            lang: d.lang,
          });
        }
        state.lastSeq = d.seq;
        state.recent = window.slice(-(WINDOW - 1));
      });
      await saveStates(trx, states);
      if (!found.length) return;
      const snippets = await headlines(trx, found);
      const matched = found.map((f, i) => ({ ...f.m, snippet: snippets[i]! }));
      const fresh = await record(trx, matched, Date.now());
      if (fresh.length) await deliveries(trx, book, fresh, Date.now());
      onMatches(fresh.length);
    },
  };
}

/** Each caption's tsvector, computed by Postgres exactly as the read model's search_vector is. */
async function documents(trx: Transaction<Database>, rows: { text: string; lang: string | null }[]): Promise<string[]> {
  const { rows: out } = await sql<{ v: string }>`
    SELECT public.castlog_search_vector(x.lang, x.text)::text AS v
    FROM unnest(${rows.map((r) => r.lang)}::text[], ${rows.map((r) => r.text)}::text[]) WITH ORDINALITY AS x(lang, text, i)
    ORDER BY x.i`.execute(trx);
  return out.map((r) => r.v);
}

async function loadStates(trx: Transaction<Database>, keys: (readonly [string, string])[]): Promise<Map<string, StationState>> {
  const { rows } = await sql<{ channel: string; station: string; last_seq: number; recent: Recent[] }>`
    SELECT w.channel, w.station, w.last_seq, w.recent FROM window_state w
    JOIN unnest(${keys.map((k) => k[0])}::text[], ${keys.map((k) => k[1])}::text[]) AS k(channel, station)
      ON w.channel = k.channel AND w.station = k.station`.execute(trx);
  return new Map(rows.map((r) => [`${r.channel}\u0000${r.station}`, { lastSeq: Number(r.last_seq), recent: r.recent }]));
}

async function saveStates(trx: Transaction<Database>, states: Map<string, StationState>): Promise<void> {
  const entries = [...states].map(([key, s]) => ({ key: key.split('\u0000'), s }));
  await sql`
    INSERT INTO window_state (channel, station, last_seq, recent)
    SELECT * FROM unnest(${entries.map((e) => e.key[0]!)}::text[], ${entries.map((e) => e.key[1]!)}::text[],
                         ${entries.map((e) => e.s.lastSeq)}::bigint[], ${entries.map((e) => JSON.stringify(e.s.recent))}::jsonb[])
    ON CONFLICT (channel, station) DO UPDATE SET last_seq = excluded.last_seq, recent = excluded.recent`.execute(trx);
}

/** Snippets as search makes them (ts_headline under the caption's language). */
async function headlines(trx: Transaction<Database>, found: { tsquery: string; text: string; lang: string | null }[]): Promise<string[]> {
  const { rows } = await sql<{ h: string }>`
    SELECT ${headlineSql(sql.ref('x.text'), sql.ref('x.lang'), sql`x.q::tsquery`, MARKS)} AS h
    FROM unnest(${found.map((f) => f.lang)}::text[], ${found.map((f) => f.text)}::text[], ${found.map((f) => f.tsquery)}::text[])
      WITH ORDINALITY AS x(lang, text, q, i)
    ORDER BY x.i`.execute(trx);
  return rows.map((r) => snippetHtml(r.h));
}

/** Records the matches; returns those not recorded before (a batch applied again finds none new). */
async function record(trx: Transaction<Database>, matched: NewMatch[], now: number): Promise<NewMatch[]> {
  const inserted = await trx
    .insertInto('alert_matches')
    .values(
      matched.map((m) => ({
        alert_id: m.alertId,
        partition: m.partition,
        offset: m.offset,
        user_id: m.userId,
        channel: m.channel,
        position: formatPosition(m),
        station: m.station,
        start_ms: m.start,
        text: m.text,
        snippet: m.snippet,
        matched_at_ms: now,
      })),
    )
    .onConflict((oc) => oc.columns(['alert_id', 'partition', 'offset']).doNothing())
    .returning(['alert_id', 'partition', 'offset'])
    .execute();
  const keys = new Set(inserted.map((r) => `${r.alert_id}/${r.partition}/${r.offset}`));
  return matched.filter((m) => keys.has(`${m.alertId}/${m.partition}/${m.offset}`));
}

/** The e-mail and webhook each new match causes, once per (alert, caption). */
async function deliveries(trx: Transaction<Database>, book: AlertBook, fresh: NewMatch[], now: number): Promise<void> {
  const rows = fresh.flatMap((m) => {
    const alert = book.get(m.alertId)!;
    const position = formatPosition(m);
    const cause = `alert:${m.alertId}:${m.partition}:${m.offset}`;
    const match = {
      alertId: m.alertId,
      channel: m.channel,
      position,
      station: m.station,
      start: m.start,
      text: m.text,
      snippet: m.snippet,
    };
    const base = {
      cause,
      user_id: m.userId,
      alert_id: m.alertId,
      job_id: null,
      next_attempt_at_ms: now,
      created_at_ms: now,
      sent_at_ms: null,
      last_error: null,
    };
    return [
      ...(alert.email
        ? [{ ...base, kind: 'email' as const, target: alert.email, payload: JSON.stringify({ ...match, query: alert.query }) }]
        : []),
      ...(alert.webhookUrl
        ? [
            {
              ...base,
              kind: 'webhook' as const,
              target: alert.webhookUrl,
              payload: JSON.stringify({ type: 'AlertMatched', id: cause, alertId: m.alertId, data: match }),
            },
          ]
        : []),
    ];
  });
  if (rows.length)
    await trx
      .insertInto('deliveries')
      .values(rows)
      .onConflict((oc) => oc.columns(['kind', 'cause']).doNothing())
      .execute();
}
