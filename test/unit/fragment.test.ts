// What a capture station may send: one fragment per NDJSON line, checked before anything is written.
import { describe, expect, it } from 'vitest';
import { AvroCodec } from '../../schemas/codec.ts';
import { MAX_TEXT_CHARS, checkFragment, parseFragmentLine, type FragmentCheck } from '../../domain/captions/fragment.ts';

const minimal = { seq: 0, text: 'hello', start: 1_700_000_000_000, end: 1_700_000_000_500 };
const full = { ...minimal, seq: 42, mode: 'rollup', lang: 'pt-BR' };
const bytes = (s: string) => new TextEncoder().encode(s);

function errorOf(check: FragmentCheck): string {
  if (check.ok) throw new Error(`expected a rejection, got ${JSON.stringify(check.fragment)}`);
  return check.error;
}

describe('checkFragment accepts', () => {
  it.each([
    ['a minimal fragment, mode and lang defaulting to null', minimal, { ...minimal, mode: null, lang: null }],
    ['a full fragment', full, full],
    ['explicit nulls for mode and lang', { ...minimal, mode: null, lang: null }, { ...minimal, mode: null, lang: null }],
    ['end equal to start', { ...minimal, end: minimal.start }, { ...minimal, end: minimal.start, mode: null, lang: null }],
    ['seq 0 and time 0', { ...minimal, seq: 0, start: 0, end: 0 }, { ...minimal, start: 0, end: 0, mode: null, lang: null }],
    ['an empty text', { ...minimal, text: '' }, { ...minimal, text: '', mode: null, lang: null }],
    ['every mode', { ...minimal, mode: 'popon' }, { ...minimal, mode: 'popon', lang: null }],
    ['painton', { ...minimal, mode: 'painton' }, { ...minimal, mode: 'painton', lang: null }],
    ['a bare language', { ...minimal, lang: 'en' }, { ...minimal, mode: null, lang: 'en' }],
    ['a language with script and region', { ...minimal, lang: 'zh-Hant-TW' }, { ...minimal, mode: null, lang: 'zh-Hant-TW' }],
  ])('%s', (_name, input, fragment) => {
    expect(checkFragment(input)).toEqual({ ok: true, fragment });
  });

  it(`a text of exactly ${MAX_TEXT_CHARS} characters, counted as characters, not UTF-16 units or bytes`, () => {
    for (const ch of ['a', 'é', '字', '😀']) {
      const text = ch.repeat(MAX_TEXT_CHARS);
      const check = checkFragment({ ...minimal, text });
      expect(check.ok, `${MAX_TEXT_CHARS} × ${ch}`).toBe(true);
    }
  });
});

describe('checkFragment accepts only what can be stored', () => {
  const codec = new AvroCodec();
  const store = (f: object) => codec.encode('CaptionFragmentReceived', { channel: 'c', station: 's', receivedAt: 0, ...f } as never);

  // Avro longs hold the integers avsc can write without loss: up to 2^53 - 2, one less than MAX_SAFE_INTEGER.
  it.each([
    ['seq', { ...minimal, seq: 2 ** 53 - 2 }, { ...minimal, seq: 2 ** 53 - 1 }],
    ['start', { ...minimal, start: 2 ** 53 - 2, end: 2 ** 53 - 2 }, { ...minimal, start: 2 ** 53 - 1, end: 2 ** 53 - 1 }],
    ['end', { ...minimal, end: 2 ** 53 - 2 }, { ...minimal, end: 2 ** 53 - 1 }],
  ])('the largest %s it accepts can be written as an Avro long, and one more is rejected', (field, largest, tooLarge) => {
    const check = checkFragment(largest);
    if (!check.ok) throw new Error(check.error);
    expect(() => store(check.fragment)).not.toThrow();
    expect(errorOf(checkFragment(tooLarge))).toMatch(new RegExp(`^${field}: `));
  });

  it('every fragment it accepts can be encoded', () => {
    for (const input of [
      minimal,
      full,
      { ...minimal, text: '😀'.repeat(MAX_TEXT_CHARS) },
      { ...minimal, mode: 'painton', lang: 'zh-Hant-TW' },
    ]) {
      const check = checkFragment(input);
      if (!check.ok) throw new Error(check.error);
      expect(() => store(check.fragment)).not.toThrow();
    }
  });
});

describe('checkFragment rejects, naming the field first', () => {
  it.each<[string, unknown, string]>([
    ['missing seq', { text: 'x', start: 1, end: 2 }, 'seq'],
    ['negative seq', { ...minimal, seq: -1 }, 'seq'],
    ['fractional seq', { ...minimal, seq: 1.5 }, 'seq'],
    ['seq as a string', { ...minimal, seq: '1' }, 'seq'],
    ['seq past 2^53', { ...minimal, seq: 2 ** 53 }, 'seq'],
    ['seq null', { ...minimal, seq: null }, 'seq'],
    ['missing text', { seq: 1, start: 1, end: 2 }, 'text'],
    ['text a number', { ...minimal, text: 42 }, 'text'],
    ['text an array', { ...minimal, text: ['a'] }, 'text'],
    ['text null', { ...minimal, text: null }, 'text'],
    [`text of ${MAX_TEXT_CHARS + 1} characters`, { ...minimal, text: 'a'.repeat(MAX_TEXT_CHARS + 1) }, 'text'],
    [`text of ${MAX_TEXT_CHARS + 1} accented characters`, { ...minimal, text: 'é'.repeat(MAX_TEXT_CHARS + 1) }, 'text'],
    [`text of ${MAX_TEXT_CHARS + 1} emoji`, { ...minimal, text: '😀'.repeat(MAX_TEXT_CHARS + 1) }, 'text'],
    ['missing start', { seq: 1, text: 'x', end: 2 }, 'start'],
    ['fractional start', { ...minimal, start: 1.5 }, 'start'],
    ['negative start', { ...minimal, start: -1 }, 'start'],
    ['start as an ISO string', { ...minimal, start: '2024-01-01T00:00:00Z' }, 'start'],
    ['missing end', { seq: 1, text: 'x', start: 1 }, 'end'],
    ['fractional end', { ...minimal, end: 2.5 }, 'end'],
    ['end as a string', { ...minimal, end: '2' }, 'end'],
    ['end before start', { ...minimal, end: minimal.start - 1 }, 'end'],
    ['an unknown mode', { ...minimal, mode: 'scroll' }, 'mode'],
    ['a mode in the wrong case', { ...minimal, mode: 'ROLLUP' }, 'mode'],
    ['mode a number', { ...minimal, mode: 1 }, 'mode'],
    ['lang with an underscore', { ...minimal, lang: 'en_US' }, 'lang'],
    ['lang empty', { ...minimal, lang: '' }, 'lang'],
    ['lang one letter', { ...minimal, lang: 'e' }, 'lang'],
    ['lang with a trailing hyphen', { ...minimal, lang: 'en-' }, 'lang'],
    ['lang a number', { ...minimal, lang: 42 }, 'lang'],
    ['an unknown field', { ...minimal, speaker: 'Ann' }, 'speaker'],
    ['a __proto__ field', JSON.parse('{"seq":1,"text":"x","start":1,"end":2,"__proto__":{}}'), '__proto__'],
  ])('%s', (_name, input, field) => {
    expect(errorOf(checkFragment(input))).toMatch(new RegExp(`^${field}: `));
  });

  it('an unknown field before anything else, so a typo is named rather than reported as missing', () => {
    expect(errorOf(checkFragment({ sequence: 1, text: 'x', start: 1, end: 2 }))).toBe('sequence: unknown field');
  });

  it.each<[string, unknown]>([
    ['null', null],
    ['a number', 42],
    ['a string', '{"seq":1}'],
    ['a boolean', true],
    ['an array', [minimal]],
    ['undefined', undefined],
  ])('%s, as not a JSON object', (_name, input) => {
    expect(errorOf(checkFragment(input))).toBe('a fragment must be a JSON object');
  });
});

describe('parseFragmentLine', () => {
  it('parses a good line into a fragment', () => {
    expect(parseFragmentLine(bytes(JSON.stringify(full)))).toEqual({ ok: true, fragment: full });
  });

  it('keeps multi-byte text intact', () => {
    const text = 'Olá, 世界 😀';
    const check = parseFragmentLine(bytes(JSON.stringify({ ...minimal, text })));
    expect(check.ok && check.fragment.text).toBe(text);
  });

  it('accepts an escaped surrogate pair as the character it encodes', () => {
    const check = parseFragmentLine(bytes('{"seq":1,"text":"\\ud83d\\ude00","start":1,"end":2}'));
    expect(check.ok && check.fragment.text).toBe('😀');
  });

  it.each([
    ['a lone high surrogate', '\\ud83d'],
    ['a lone low surrogate', 'a\\ude00b'],
    ['a reversed pair', '\\ude00\\ud83d'],
  ])('rejects text with %s escaped in the JSON: it is not Unicode text and could not be stored as UTF-8', (_name, escaped) => {
    expect(errorOf(parseFragmentLine(bytes(`{"seq":1,"text":"${escaped}","start":1,"end":2}`)))).toMatch(/^text: /);
  });

  it('rejects a NUL character, escaped or raw: Postgres text cannot hold one, and the read model would stop there', () => {
    expect(errorOf(parseFragmentLine(bytes('{"seq":1,"text":"a\\u0000b","start":1,"end":2}')))).toBe(
      'text: must not contain NUL (U+0000) characters',
    );
    expect(errorOf(checkFragment({ ...minimal, text: 'a\u0000b' }))).toMatch(/^text: .*NUL/);
    expect(checkFragment({ ...minimal, text: 'a\u0001b' }).ok).toBe(true);
  });

  it('applies the field checks to what it parsed', () => {
    expect(errorOf(parseFragmentLine(bytes(JSON.stringify({ ...minimal, seq: -3 }))))).toMatch(/^seq: /);
    expect(errorOf(parseFragmentLine(bytes('[1,2]')))).toBe('a fragment must be a JSON object');
    expect(errorOf(parseFragmentLine(bytes('null')))).toBe('a fragment must be a JSON object');
  });

  it.each<[string, number[]]>([
    ['a stray continuation byte', [0x80]],
    ['0xFF', [0xff]],
    ['a truncated two-byte sequence', [0xc3]],
    ['an overlong encoding of "/"', [0xc0, 0xaf]],
    ['an encoded UTF-16 surrogate', [0xed, 0xa0, 0x80]],
    ['a code point past U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ])('rejects invalid UTF-8 (%s) as an error, not an exception', (_name, bad) => {
    const line = Buffer.concat([Buffer.from('{"seq":1,"text":"'), Buffer.from(bad), Buffer.from('","start":1,"end":2}')]);
    expect(parseFragmentLine(line)).toEqual({ ok: false, error: 'line is not valid UTF-8' });
  });

  it.each([
    ['an empty line', ''],
    ['a truncated object', '{"seq":1,"text":"x"'],
    ['single quotes', "{'seq':1}"],
    ['a trailing comma', '{"seq":1,}'],
    ['two objects on one line', '{"seq":1}{"seq":2}'],
    ['bare words', 'hello'],
  ])('rejects malformed JSON (%s) as an error, not an exception', (_name, line) => {
    expect(errorOf(parseFragmentLine(bytes(line)))).toMatch(/^malformed JSON: /);
  });
});
