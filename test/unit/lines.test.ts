// NDJSON bodies arrive in whatever chunks the network makes; lines must come out the same regardless.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isBlank, splitLines } from '../../apps/api/lines.ts';

const TOO_LONG = '<too long>';

/** The lines of a body delivered as these chunks: each line's text, or TOO_LONG. */
async function linesOf(chunks: (string | Buffer)[], maxBytes = 1024): Promise<string[]> {
  const out: string[] = [];
  const input = Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c) : c)));
  for await (const lines of splitLines(input, maxBytes))
    for (const line of lines) out.push('tooLong' in line ? TOO_LONG : line.bytes.toString('utf8'));
  return out;
}

/** A body cut into chunks of `size` bytes. */
function chunked(body: string, size: number): Buffer[] {
  const bytes = Buffer.from(body);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
  return chunks;
}

describe('splitLines', () => {
  it('splits one chunk into its lines', async () => {
    expect(await linesOf(['a\nbb\nccc\n'])).toEqual(['a', 'bb', 'ccc']);
  });

  it('joins a line split across chunks', async () => {
    expect(await linesOf(['{"seq":', '1}\n{"se', 'q":2}\n'])).toEqual(['{"seq":1}', '{"seq":2}']);
  });

  it('gives the same lines however the body is chunked, down to one byte at a time', async () => {
    const body = 'first\r\n\nsecond line\nthird\r\nlast';
    for (let size = 1; size <= Buffer.byteLength(body); size++) {
      expect(await linesOf(chunked(body, size)), `chunks of ${size}`).toEqual(['first', '', 'second line', 'third', 'last']);
    }
  });

  it('does not split a multi-byte character cut between chunks', async () => {
    const oneByteChunks = [...Buffer.from('olá 😀\nçà\n')].map((b) => Buffer.from([b]));
    expect(await linesOf(oneByteChunks)).toEqual(['olá 😀', 'çà']);
  });

  it('strips CRLF line endings, with the CR and LF in different chunks', async () => {
    expect(await linesOf(['a\r', '\nb\r\n'])).toEqual(['a', 'b']);
  });

  it('keeps a CR that is not at the end of a line', async () => {
    expect(await linesOf(['a\rb\n'])).toEqual(['a\rb']);
  });

  it('yields the last line when the body does not end with a newline', async () => {
    expect(await linesOf(['a\n', 'b'])).toEqual(['a', 'b']);
    expect(await linesOf(['no newline at all'])).toEqual(['no newline at all']);
  });

  it('yields no extra empty line after a final newline', async () => {
    expect(await linesOf(['a\n'])).toEqual(['a']);
    expect(await linesOf(['a\n', ''])).toEqual(['a']);
  });

  it('yields empty lines as empty', async () => {
    expect(await linesOf(['\n\na\n', '\n', '\r\n'])).toEqual(['', '', 'a', '', '']);
  });

  it('yields nothing for an empty body', async () => {
    expect(await linesOf([])).toEqual([]);
    expect(await linesOf([''])).toEqual([]);
  });

  it('accepts a line of exactly maxBytes and reports one byte more as too long', async () => {
    expect(await linesOf(['12345\n123456\n'], 5)).toEqual(['12345', TOO_LONG]);
  });

  it('counts bytes, not characters', async () => {
    expect(await linesOf(['éé\néé\n'], 4)).toEqual(['éé', 'éé']);
    expect(await linesOf(['ééé\n'], 5)).toEqual([TOO_LONG]);
  });

  it('reports an overlong line within one chunk and still reads the next line', async () => {
    expect(await linesOf(['ok\n' + 'x'.repeat(20) + '\nfine\n'], 10)).toEqual(['ok', TOO_LONG, 'fine']);
  });

  it('reports an overlong line that ends inside a later chunk, and the rest of that chunk is a good line', async () => {
    expect(await linesOf(['ok\nxxxxxx', 'xxxxxx', 'xxxxxx', 'xx\nfine\nal', 'so\n'], 10)).toEqual(['ok', TOO_LONG, 'fine', 'also']);
  });

  it('reports an overlong line that only becomes too long in a later chunk', async () => {
    expect(await linesOf(['12345678', '90', 'A\nnext\n'], 10)).toEqual([TOO_LONG, 'next']);
  });

  it('reports an overlong last line without a newline', async () => {
    expect(await linesOf(['ok\n', 'y'.repeat(8), 'y'.repeat(8)], 10)).toEqual(['ok', TOO_LONG]);
  });

  it('reports consecutive overlong lines separately, with an empty line between them kept', async () => {
    expect(await linesOf(['x'.repeat(11) + '\n\n' + 'y'.repeat(11) + '\nz\n'], 10)).toEqual([TOO_LONG, '', TOO_LONG, 'z']);
  });

  it('reads a huge line in many chunks as one too-long line without choking', async () => {
    const chunks = Array.from({ length: 2000 }, () => Buffer.alloc(4096, 0x61));
    expect(await linesOf(['a\n', ...chunks, '\nb\n'], 64 * 1024)).toEqual(['a', TOO_LONG, 'b']);
  });

  it('gives each line its own bytes, unaffected by later chunks', async () => {
    const input = Readable.from([Buffer.from('one\ntw'), Buffer.from('o\nthree\n')]);
    const kept: Buffer[] = [];
    for await (const lines of splitLines(input, 100)) for (const line of lines) if ('bytes' in line) kept.push(line.bytes);
    expect(kept.map((b) => b.toString())).toEqual(['one', 'two', 'three']);
  });

  it("hands over a chunk's lines together, and every line once", async () => {
    const input = Readable.from([Buffer.from('a\nb\nc'), Buffer.from('\nd\n'), Buffer.from('e')]);
    const batches: string[][] = [];
    for await (const lines of splitLines(input, 100)) batches.push([...lines].map((l) => ('bytes' in l ? l.bytes.toString() : TOO_LONG)));
    expect(batches).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
  });

  it('cuts the rest of a chunk a reader left before the next one, so no line is lost or joined', async () => {
    const input = Readable.from([Buffer.from('a\nb\nc'), Buffer.from('d\ne\n')]);
    const seen: string[] = [];
    for await (const lines of splitLines(input, 100))
      for (const l of lines) {
        if ('bytes' in l) seen.push(l.bytes.toString());
        break; // the first line of each chunk only
      }
    expect(seen).toEqual(['a', 'cd']);
  });
});

describe('isBlank', () => {
  it('agrees with /^\\s*$/ over the Latin-1 reading of generated lines', () => {
    const alphabet = [0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0xa0, 0x08, 0x0e, 0x1f, 0x21, 0x7b, 0x85, 0xc2, 0xff, 0x00];
    for (let i = 0; i < 5000; i++) {
      const bytes = Buffer.from(
        Array.from({ length: i % 7 }, (_, k) => alphabet[(i * 31 + k * 17 + (i >> 3)) % (k === 0 && i % 3 ? 7 : alphabet.length)]!),
      );
      expect(isBlank(bytes), JSON.stringify([...bytes])).toBe(/^\s*$/.test(bytes.toString('latin1')));
    }
  });
});
