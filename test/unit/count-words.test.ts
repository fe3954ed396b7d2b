// Analytics counts a caption's words with one regular expression run over the text in a loop: the
// count must be the number of matches, whatever the text, however often it is called.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { countWords } from '../../projections/analytics/projection.ts';

/** The rule as the analytics header states it, counted the plain way. */
const reference = (text: string) => [...text.matchAll(/[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu)].length;

describe('countWords', () => {
  it('counts the matches of the word rule in any text, call after call', () => {
    const piece = fc.oneof(
      fc.constantFrom(' ', "'", '’', '-', '--', '♪', '\n', 'ä', 'Köln', "don't", 'well-known', '42', '日本語', '🙂'),
      fc.string({ unit: 'grapheme', maxLength: 6 }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }), (pieces) => {
        const text = pieces.join('');
        expect(countWords(text)).toBe(reference(text));
        expect(countWords(text), 'the same again: no state left from the last call').toBe(reference(text));
      }),
      { numRuns: 3000 },
    );
    expect(countWords('')).toBe(0);
  });
});
