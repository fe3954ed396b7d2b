// Which alerts a caption matches, among many. Each alert is filed under a few lexemes of which a
// caption must hold at least one for the alert to match it (its anchors), so a caption is tested
// only against the alerts it might match, not against every alert. A match is exactly what
// /v1/search would find — the same tsquery against the same tsvector, evaluated as Postgres does
// (tsquery.ts) — with one exception for live TV: a phrase may begin in one of the WINDOW - 1
// captions before this one from the same station on the same channel (rollup captions split
// sentences), and counts for the caption it ends in. Pure, no I/O.
import { anchors, hasPhrase, matches, parseTsQuery, phraseEndsFrom, type TsQuery, type TsVector } from './tsquery.ts';

/** Captions a phrase may span: this one and the two before it from the same station. */
export const WINDOW = 3;

export interface AlertToMatch {
  alertId: string;
  userId: string;
  tsquery: string;
  /** Only these channels; empty: every channel. */
  channels: string[];
  /** Captions received before this time never match it. */
  createdAt: number;
}

interface Filed {
  alert: AlertToMatch;
  query: TsQuery;
  channels: Set<string> | undefined;
  phrase: boolean;
  anchors: Set<string> | undefined;
}

/** A caption to match: its channel, when it was received, and its document (tsvector). */
export interface CaptionToMatch {
  channel: string;
  receivedAt: number;
  doc: TsVector;
}

export class AlertIndex {
  private readonly filed = new Map<string, Filed>();
  private readonly byLexeme = new Map<string, Set<string>>();
  /** Alerts that can match without any lexeme of theirs present (`-a or b`): tried on every caption. */
  private readonly unanchored = new Set<string>();

  get size(): number {
    return this.filed.size;
  }

  get(alertId: string): AlertToMatch | undefined {
    return this.filed.get(alertId)?.alert;
  }

  add(alert: AlertToMatch): void {
    this.remove(alert.alertId);
    const query = parseTsQuery(alert.tsquery);
    if (!query) return; // nothing to look for: it can match nothing
    const f: Filed = {
      alert,
      query,
      channels: alert.channels.length ? new Set(alert.channels) : undefined,
      phrase: hasPhrase(query),
      anchors: anchors(query),
    };
    this.filed.set(alert.alertId, f);
    if (!f.anchors) this.unanchored.add(alert.alertId);
    for (const lexeme of f.anchors ?? []) {
      let set = this.byLexeme.get(lexeme);
      if (!set) this.byLexeme.set(lexeme, (set = new Set()));
      set.add(alert.alertId);
    }
  }

  remove(alertId: string): void {
    const f = this.filed.get(alertId);
    if (!f) return;
    this.filed.delete(alertId);
    this.unanchored.delete(alertId);
    for (const lexeme of f.anchors ?? []) {
      const set = this.byLexeme.get(lexeme);
      set?.delete(alertId);
      if (set?.size === 0) this.byLexeme.delete(lexeme);
    }
  }

  /**
   * The alerts the newest caption of `window` matches (`window`: up to WINDOW captions of one
   * station on one channel, oldest first, the newest last). `across` says which matched only
   * through a phrase that began in an earlier caption.
   */
  match(window: CaptionToMatch[]): { alertId: string; across: boolean }[] {
    const newest = window.at(-1)!;
    const candidates = new Set(this.unanchored);
    for (const c of window) {
      for (const lexeme of c.doc.keys()) for (const id of this.byLexeme.get(lexeme) ?? []) candidates.add(id);
    }
    let joined: { doc: TsVector; from: number } | undefined;
    const out: { alertId: string; across: boolean }[] = [];
    for (const id of candidates) {
      const f = this.filed.get(id)!;
      if (f.channels && !f.channels.has(newest.channel)) continue;
      if (newest.receivedAt < f.alert.createdAt) continue;
      if (matches(f.query, newest.doc)) out.push({ alertId: id, across: false });
      else if (f.phrase && window.length > 1) {
        joined ??= concatenate(window.map((c) => c.doc));
        const j = joined;
        if (matches(f.query, newest.doc, (p) => phraseEndsFrom(p, j.doc, j.from))) out.push({ alertId: id, across: true });
      }
    }
    return out;
  }

  /** Every alert tried on the caption, no index: the baseline the index is measured against. */
  matchNaive(caption: CaptionToMatch): string[] {
    const out: string[] = [];
    for (const [id, f] of this.filed) {
      if (f.channels && !f.channels.has(caption.channel)) continue;
      if (caption.receivedAt < f.alert.createdAt) continue;
      if (matches(f.query, caption.doc)) out.push(id);
    }
    return out;
  }
}

/**
 * Documents one after another, as Postgres' tsvector || tsvector does: each one's positions shifted
 * past the last position of those before it. `from` is where the last document's positions begin.
 */
export function concatenate(docs: TsVector[]): { doc: TsVector; from: number } {
  const doc: TsVector = new Map();
  let shift = 0;
  let from = 1;
  for (const d of docs) {
    from = shift + 1;
    let max = 0;
    for (const [lexeme, positions] of d) {
      const moved = positions.map((p) => p + shift);
      const had = doc.get(lexeme);
      doc.set(lexeme, had ? [...had, ...moved] : moved);
      for (const p of positions) max = Math.max(max, p);
    }
    shift += max;
  }
  return { doc, from };
}
