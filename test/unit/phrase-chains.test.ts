// How the phrase cut-off (projections/captions/search-phrase-cutoff.ts) reads a query: only a
// disjunction of phrases, each a chain of two or more lexemes at fixed distances, is taken; anything
// else is left to ranking every hit.
import { describe, expect, it } from 'vitest';
import { phraseChains, twiceTokens } from '../../projections/captions/search-phrase-cutoff.ts';

/** A lexeme as tsquery's text writes it. */
const quote = (l: string) => `'${l.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

describe('phrase chains', () => {
  it('reads phrases as tsquery writes them, with their distances and quoting', () => {
    expect(phraseChains(`'weather' <-> 'footbal' | 'weath' <-> 'footb'`)).toEqual([
      ['weather', 'footbal'],
      ['weath', 'footb'],
    ]);
    expect(phraseChains(`'weather' <3> 'rain' | 'weather' <-> 'in' <-> 'the' <-> 'rain'`)).toEqual([
      ['weather', 'rain'],
      ['weather', 'in', 'the', 'rain'],
    ]);
    expect(phraseChains(`'it''s' <-> 'a\\\\b'`)).toEqual([["it's", 'a\\b']]);
    expect(phraseChains(`'a' <-> 'a'`)).toEqual([['a', 'a']]);
  });

  it('takes nothing but phrases of two or more lexemes', () => {
    for (const other of [
      `'a'`, // a lone lexeme: the one-word cut-off's
      `'a' <-> 'b' | 'c'`,
      `'a' & 'b'`,
      `'a' <-> !'b'`,
      `!'a' <-> 'b'`,
      `( 'a' <-> 'b' ) <-> 'c'`,
      `'a' <-> ( 'b' | 'c' )`,
      `'a':* <-> 'b'`,
      `'a':A <-> 'b'`,
      `'a' <0> 'b'`, // the same position: not a chain of distinct positions
      `'a' <-1> 'b'`,
      `'a' <123456> 'b'`,
      `'a' <-> 'b' |`,
      `'a' <->`,
      `'a`,
      `'a' <-> 'b`,
      `'a'  <-> 'b'`,
      ``,
    ])
      expect(phraseChains(other), other).toBeNull();
  });

  it('gives back any generated disjunction of chains it is written from', () => {
    let seed = 7;
    const rand = (n: number) => (seed = (seed * 48271) % 2147483647) % n;
    const alphabet = ['a', 'b', "'", '\\', 'é', ' ', '|', '<', '>', '-', ':', '*', '!', '(', ')', '&'];
    const lexeme = () => Array.from({ length: 1 + rand(4) }, () => alphabet[rand(alphabet.length)]).join('');
    for (let run = 0; run < 2000; run++) {
      const chains = Array.from({ length: 1 + rand(5) }, () => Array.from({ length: 2 + rand(4) }, lexeme));
      const text = chains
        .map((c) => c.map((l, i) => (i === 0 ? quote(l) : `${rand(3) ? '<->' : `<${1 + rand(9)}>`} ${quote(l)}`)).join(' '))
        .join(' | ');
      expect(phraseChains(text), text).toEqual(chains);
    }
  });

  it('asks the repeat index for each lexeme once more than its chain names it', () => {
    expect(twiceTokens(['weather', 'footbal'])).toEqual(['weather/2', 'footbal/2']);
    expect(twiceTokens(['storm', 'storm'])).toEqual(['storm/3']);
    expect(twiceTokens(['a', 'b', 'a', 'c'])).toEqual(['a/3', 'b/2', 'c/2']);
  });
});
