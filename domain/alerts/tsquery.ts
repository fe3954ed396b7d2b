// Postgres full-text search, evaluated here: a tsquery (as Postgres writes it) against a tsvector
// (as Postgres writes it), with exactly Postgres' rules for &, |, !, and phrases <N> — including
// how phrases treat positions, widths and negation (TS_execute and TS_phrase_execute in
// src/backend/utils/adt/tsvector_op.c). Postgres still does the language work (parsing,
// stemming, stop words: to_tsvector and websearch_to_tsquery); this lets the matcher test a
// caption against many alerts without asking Postgres once per alert. Pure, no I/O.

export type TsQuery =
  | { op: 'val'; lexeme: string }
  | { op: 'not'; arg: TsQuery }
  | { op: 'and' | 'or'; left: TsQuery; right: TsQuery }
  | { op: 'phrase'; distance: number; left: TsQuery; right: TsQuery };

/** A document: each lexeme with its positions (sorted, unique, from 1). */
export type TsVector = Map<string, number[]>;

export class TsSyntaxError extends Error {}

/** Reads a quoted lexeme ('...' with '' and \ escapes) at `i`; returns it and the index after it. */
function quoted(text: string, i: number): [string, number] {
  let out = '';
  for (i++; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) out += text[++i];
    else if (c === "'") {
      if (text[i + 1] === "'") out += text[++i];
      else return [out, i + 1];
    } else out += c;
  }
  throw new TsSyntaxError('unterminated lexeme');
}

/** Parses a tsquery's text form, e.g. `'prime' <-> 'minist' & !'resign'`. Empty text: undefined. */
export function parseTsQuery(text: string): TsQuery | undefined {
  let i = 0;
  const skip = () => {
    while (i < text.length && text[i] === ' ') i++;
  };
  const peek = () => (skip(), text[i]);
  const operand = (): TsQuery => {
    skip();
    const c = text[i];
    if (c === '(') {
      i++;
      const q = or();
      if (peek() !== ')') throw new TsSyntaxError(`expected ) at ${i}`);
      i++;
      return q;
    }
    if (c === '!') {
      i++;
      return { op: 'not', arg: operand() };
    }
    if (c !== "'") throw new TsSyntaxError(`expected a lexeme at ${i}`);
    const [lexeme, next] = quoted(text, i);
    i = next;
    // Weights (:AB) and prefix (:*) do not occur in what websearch_to_tsquery writes.
    if (text[i] === ':') throw new TsSyntaxError('weights and prefix matches are not supported');
    return { op: 'val', lexeme };
  };
  const phrase = (): TsQuery => {
    let left = operand();
    for (;;) {
      skip();
      const m = /^<(-|\d+)>/.exec(text.slice(i));
      if (!m) return left;
      i += m[0].length;
      left = { op: 'phrase', distance: m[1] === '-' ? 1 : Number(m[1]), left, right: operand() };
    }
  };
  const and = (): TsQuery => {
    let left = phrase();
    while (peek() === '&') {
      i++;
      left = { op: 'and', left, right: phrase() };
    }
    return left;
  };
  const or = (): TsQuery => {
    let left = and();
    while (peek() === '|') {
      i++;
      left = { op: 'or', left, right: and() };
    }
    return left;
  };
  if (!text.trim()) return undefined;
  const q = or();
  if (peek() !== undefined) throw new TsSyntaxError(`unexpected ${text[i]} at ${i}`);
  return q;
}

/** Parses a tsvector's text form, e.g. `'minist':3 'prime':2,5`. */
export function parseTsVector(text: string): TsVector {
  const v: TsVector = new Map();
  let i = 0;
  while (i < text.length) {
    if (text[i] === ' ') {
      i++;
      continue;
    }
    const [lexeme, next] = quoted(text, i);
    i = next;
    const positions: number[] = [];
    if (text[i] === ':') {
      const m = /^:([0-9A-D,]+)/.exec(text.slice(i))!;
      i += m[0].length;
      for (const p of m[1]!.split(',')) positions.push(Number(p.replace(/[A-D]$/, '')));
    }
    v.set(lexeme, positions);
  }
  return v;
}

/** Positions where a phrase part matched (ends of matches when width > 0), as Postgres keeps them. */
interface PhraseData {
  pos: number[];
  negate: boolean;
  width: number;
}

const L_ONLY = 1;
const R_ONLY = 2;
const BOTH = 4;

/** TS_phrase_output: merges two sorted position lists as `emit` says; true when any is emitted. */
function output(data: PhraseData, l: PhraseData, r: PhraseData, emit: number, loff: number, roff: number): boolean {
  let li = 0;
  let ri = 0;
  while (li < l.pos.length || ri < r.pos.length) {
    let lp: number;
    let rp: number;
    if (li < l.pos.length) lp = l.pos[li]! + loff;
    else {
      if (!(emit & R_ONLY)) break;
      lp = Infinity;
    }
    if (ri < r.pos.length) rp = r.pos[ri]! + roff;
    else {
      if (!(emit & L_ONLY)) break;
      rp = Infinity;
    }
    let out = 0;
    if (lp < rp) {
      if (emit & L_ONLY) out = lp;
      li++;
    } else if (lp === rp) {
      if (emit & BOTH) out = rp;
      li++;
      ri++;
    } else {
      if (emit & R_ONLY) out = rp;
      ri++;
    }
    if (out > 0) data.pos.push(out);
  }
  return data.pos.length > 0;
}

const empty = (): PhraseData => ({ pos: [], negate: false, width: 0 });

/** TS_phrase_execute: evaluation at or below a phrase operator, where positions matter. */
function phraseExecute(q: TsQuery, doc: TsVector, data: PhraseData): boolean {
  switch (q.op) {
    case 'val': {
      const pos = doc.get(q.lexeme);
      if (!pos || pos.length === 0) return false;
      data.pos = pos.slice();
      return true;
    }
    case 'not':
      if (!phraseExecute(q.arg, doc, data)) {
        data.negate = true; // "match nowhere" becomes "match everywhere"
        return true;
      }
      if (data.pos.length > 0) {
        data.negate = !data.negate;
        return true;
      }
      if (data.negate) {
        data.negate = false;
        return false;
      }
      return false;
    case 'phrase':
    case 'and': {
      const l = empty();
      const r = empty();
      if (!phraseExecute(q.left, doc, l)) return false;
      if (!phraseExecute(q.right, doc, r)) return false;
      let loff: number;
      let roff: number;
      if (q.op === 'phrase') {
        loff = q.distance + r.width;
        roff = 0;
        data.width = q.distance + l.width + r.width;
      } else {
        const max = Math.max(l.width, r.width);
        loff = max - l.width;
        roff = max - r.width;
        data.width = max;
      }
      if (l.negate && r.negate) {
        output(data, l, r, BOTH | L_ONLY | R_ONLY, loff, roff);
        data.negate = true;
        return true;
      }
      if (l.negate) return output(data, l, r, R_ONLY, loff, roff);
      if (r.negate) return output(data, l, r, L_ONLY, loff, roff);
      return output(data, l, r, BOTH, loff, roff);
    }
    case 'or': {
      const l = empty();
      const r = empty();
      const lm = phraseExecute(q.left, doc, l);
      const rm = phraseExecute(q.right, doc, r);
      if (!lm && !rm) return false;
      if (!lm) l.width = 0;
      if (!rm) r.width = 0;
      const max = Math.max(l.width, r.width);
      const loff = max - l.width;
      const roff = max - r.width;
      data.width = max;
      if (l.negate && r.negate) {
        output(data, l, r, BOTH, loff, roff);
        data.negate = true;
        return true;
      }
      if (l.negate) {
        output(data, l, r, L_ONLY, loff, roff);
        data.negate = true;
        return true;
      }
      if (r.negate) {
        output(data, l, r, R_ONLY, loff, roff);
        data.negate = true;
        return true;
      }
      return output(data, l, r, BOTH | L_ONLY | R_ONLY, loff, roff);
    }
  }
}

/**
 * How a phrase is tested: by default against the document itself. The matcher tests phrases
 * against a window of captions too, and asks that the phrase end in the newest of them.
 */
export type PhraseTest = (q: Extract<TsQuery, { op: 'phrase' }>) => boolean;

/** `doc @@ q`, as Postgres answers it (TS_execute above phrase operators). */
export function matches(q: TsQuery, doc: TsVector, phrase: PhraseTest = (p) => phraseExecute(p, doc, empty())): boolean {
  switch (q.op) {
    case 'val':
      return (doc.get(q.lexeme)?.length ?? 0) > 0;
    case 'not':
      return !matches(q.arg, doc, phrase);
    case 'and':
      return matches(q.left, doc, phrase) && matches(q.right, doc, phrase);
    case 'or':
      return matches(q.left, doc, phrase) || matches(q.right, doc, phrase);
    case 'phrase':
      return phrase(q);
  }
}

/**
 * A phrase against a longer document (a window of consecutive captions), true only when a match
 * ends at or after position `from` (in the newest caption), so each occurrence counts once.
 */
export function phraseEndsFrom(q: Extract<TsQuery, { op: 'phrase' }>, doc: TsVector, from: number): boolean {
  const data = empty();
  if (!phraseExecute(q, doc, data)) return false;
  // "Everywhere except these positions": the newest caption has some position not excluded.
  if (data.negate) return true;
  return data.pos.some((p) => p >= from);
}

/** True when the query holds a phrase operator (only those may match across captions). */
export const hasPhrase = (q: TsQuery): boolean =>
  q.op === 'phrase' || (q.op === 'not' ? hasPhrase(q.arg) : q.op !== 'val' && (hasPhrase(q.left) || hasPhrase(q.right)));

/**
 * Lexemes of which a document must hold at least one for the query to match it, or undefined
 * when it can match without any (it has a negation at the top, like `!a | b`): the matcher files
 * an alert under one such set, so a caption is only tested against alerts it might match.
 */
export function anchors(q: TsQuery): Set<string> | undefined {
  switch (q.op) {
    case 'val':
      return new Set([q.lexeme]);
    case 'not':
      return undefined;
    case 'and':
    case 'phrase': {
      // Both sides must match: either side's anchors will do; the smaller set is fewer lookups.
      const l = anchors(q.left);
      const r = anchors(q.right);
      if (!l) return r;
      if (!r) return l;
      return l.size <= r.size ? l : r;
    }
    case 'or': {
      const l = anchors(q.left);
      const r = anchors(q.right);
      return l && r ? new Set([...l, ...r]) : undefined;
    }
  }
}
