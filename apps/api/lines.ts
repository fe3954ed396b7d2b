// Splits a byte stream into lines without decoding it, so each line's UTF-8 is checked on its own
// and one bad line cannot spoil the next. A line past maxBytes is reported, not buffered. The lines
// a chunk completes come as one synchronous iterable: a reader takes them in one turn, not one await
// (and the promises behind it) per line, and they are cut one at a time, never gathered (a chunk of
// empty lines stays a chunk in memory).
import type { Readable } from 'node:stream';

export type Line = { bytes: Buffer } | { tooLong: true };

export async function* splitLines(input: Readable, maxBytes: number): AsyncGenerator<Iterable<Line>> {
  let parts: Buffer[] = [];
  let size = 0;
  let skipping = false;
  const emit = (): Line | undefined => {
    const wasSkipping = skipping;
    let bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    parts = [];
    size = 0;
    skipping = false;
    if (wasSkipping) return { tooLong: true };
    if (bytes.length && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, -1);
    return { bytes };
  };
  const take = (piece: Buffer) => {
    if (skipping) return;
    size += piece.length;
    if (size > maxBytes) {
      skipping = true;
      parts = [];
    } else parts.push(piece);
  };
  /** The lines a chunk completes, cut one at a time as asked for (a plain iterator: this runs per line). */
  const linesOf = (chunk: Buffer, firstNewline: number): Iterator<Line> => {
    let start = 0;
    let nl = firstNewline;
    return {
      next: (): IteratorResult<Line> => {
        if (nl === -1) {
          if (start < chunk.length) take(chunk.subarray(start));
          start = chunk.length;
          return { done: true, value: undefined };
        }
        take(chunk.subarray(start, nl));
        start = nl + 1;
        nl = chunk.indexOf(0x0a, start);
        return { done: false, value: emit()! };
      },
    };
  };
  for await (const chunk of input as AsyncIterable<Buffer>) {
    const first = chunk.indexOf(0x0a);
    if (first === -1) {
      if (chunk.length) take(chunk);
      continue;
    }
    const lines = linesOf(chunk, first);
    // It has no `return`, so a reader that stops early does not close it: what it left of this chunk
    // is cut before the next one, and the line running into the next chunk stays whole.
    yield { [Symbol.iterator]: () => lines };
    while (!lines.next().done);
  }
  if (parts.length || skipping) yield [emit()!];
}

/** Whether a line holds nothing but whitespace (as `\s` reads its bytes as Latin-1), looked at byte by byte. */
export function isBlank(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0x20 && (b < 0x09 || b > 0x0d) && b !== 0xa0) return false;
  return true;
}
