// An async iterable as a Node stream (kept apart so the blob store reads as file operations only).
import { Readable } from 'node:stream';

export const readableFrom = (it: AsyncIterable<Buffer>): Readable => Readable.from(it, { objectMode: false });
