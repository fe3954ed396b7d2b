// Splits a byte stream into lines without decoding it, so each line's UTF-8 is checked on its own
// and one bad line cannot spoil the next. A line past maxBytes is reported, not buffered. The lines
// a chunk completes come together: a reader then takes a chunk's lines in one turn, not one await
// (and the promises behind it) per line.
import type { Readable } from 'node:stream';

export type Line = { bytes: Buffer } | { tooLong: true };

export async function* splitLines(input: Readable, maxBytes: number): AsyncGenerator<Line[]> {
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
  for await (const chunk of input as AsyncIterable<Buffer>) {
    const lines: Line[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      take(chunk.subarray(start, nl));
      lines.push(emit()!);
      start = nl + 1;
    }
    if (start < chunk.length) take(chunk.subarray(start));
    if (lines.length) yield lines;
  }
  if (parts.length || skipping) yield [emit()!];
}

/** Whether a line holds nothing but whitespace (as `\s` reads its bytes as Latin-1), looked at byte by byte. */
export function isBlank(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0x20 && (b < 0x09 || b > 0x0d) && b !== 0xa0) return false;
  return true;
}
