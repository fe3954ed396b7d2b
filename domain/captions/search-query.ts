// The search syntax (web-search style, as Postgres' websearch_to_tsquery reads it): words (all
// must match), "a phrase", -word or -"a phrase" (not), `or`. Pure: what a query asks for, and
// whether it is one a search can answer in reasonable time.

export const MAX_QUERY_CHARS = 256;
export const MAX_QUERY_WORDS = 32;
export const MAX_QUERY_OPERATORS = 16;

export interface QueryShape {
  /** Words outside any negation, in order. */
  words: string[];
  /** Words under a `-`. */
  negated: string[];
  /** `-` and `or` operators. */
  operators: number;
}

const WORD = /[\p{L}\p{N}]+/gu;

/** What a query is made of, read the way websearch_to_tsquery reads it. */
export function shapeOf(q: string): QueryShape {
  const shape: QueryShape = { words: [], negated: [], operators: 0 };
  // Tokens: a quoted phrase (to the next quote or the end), or a run of non-space characters.
  const tokens = q.match(/-?"[^"]*"?|[^\s"]+/g) ?? [];
  for (const token of tokens) {
    const negated = token.startsWith('-') && token.length > 1;
    const body = negated ? token.replace(/^-+/, '') : token;
    if (negated || /^-+$/.test(token)) shape.operators += token.length - body.length || 1;
    if (!negated && /^or$/i.test(body)) {
      shape.operators++;
      continue;
    }
    const words = body.match(WORD) ?? [];
    (negated ? shape.negated : shape.words).push(...words.map((w) => w.toLowerCase()));
  }
  return shape;
}

/** Why a search cannot take this query (the problem, for a 400 naming q), or undefined. */
export function queryProblem(q: string): string | undefined {
  if (!q.trim()) return 'must not be empty';
  if (q.length > MAX_QUERY_CHARS && [...q].length > MAX_QUERY_CHARS) return `must be at most ${MAX_QUERY_CHARS} characters`;
  if (q.includes('\u0000')) return 'must not contain NUL characters';
  if (/\p{Cs}/u.test(q)) return 'must be Unicode text (it has an unpaired surrogate)';
  const shape = shapeOf(q);
  if (shape.words.length + shape.negated.length > MAX_QUERY_WORDS) return `is too complex: at most ${MAX_QUERY_WORDS} words`;
  if (shape.operators > MAX_QUERY_OPERATORS) return `is too complex: at most ${MAX_QUERY_OPERATORS} operators (- and or)`;
  if (shape.words.length === 0 && shape.negated.length > 0) return 'needs a word to look for that is not negated (-word only excludes)';
  return undefined;
}
