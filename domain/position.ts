// A position in the log: the (partition, offset) of one event, written "partition:offset".
// Users resume from it; within a channel (one partition) positions are totally ordered.
export interface Position {
  partition: number;
  offset: number;
}

export function formatPosition(p: Position): string {
  return `${p.partition}:${p.offset}`;
}

const POSITION = /^(0|[1-9][0-9]{0,5}):(-1|0|[1-9][0-9]{0,15})$/;

/** Parses "partition:offset"; offset -1 means "before the first event". Undefined when malformed. */
export function parsePosition(text: string): Position | undefined {
  const m = POSITION.exec(text);
  if (!m) return undefined;
  const offset = Number(m[2]);
  return Number.isSafeInteger(offset) ? { partition: Number(m[1]), offset } : undefined;
}
