// `castlog tail <topic> [--from <position|time>]`: decoded events as JSON lines.
import { parsePosition } from '../../domain/position.ts';
import { EventLog } from '../../infra/kafka/index.ts';
import { TOPICS, type TopicName } from '../../schemas/catalog.ts';

export function parseFrom(from: string | undefined): { position?: { partition: number; offset: number }; time?: number; error?: string } {
  if (from === undefined) return {};
  const position = parsePosition(from);
  if (position) return { position };
  const time = /^\d{10,15}$/.test(from) ? Number(from) : Date.parse(from);
  if (Number.isFinite(time)) return { time };
  return {
    error: `--from must be a position "partition:offset", milliseconds since the epoch, or an ISO date; got ${JSON.stringify(from)}`,
  };
}

export async function tail(
  log: EventLog,
  topic: string,
  from: string | undefined,
  write: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  if (!(topic in TOPICS)) throw new Error(`unknown topic ${topic}; topics: ${Object.keys(TOPICS).join(', ')}`);
  const f = parseFrom(from);
  if (f.error) throw new Error(f.error);
  const name = topic as TopicName;
  const ends = await log.offsets(name);
  const byTime = f.time !== undefined ? await log.offsetsAt(name, f.time) : undefined;
  const consumer = await log.consume({
    groupId: EventLog.privateGroup('castlog-tail'),
    topics: [name],
    startAt: async (_t, partition) => {
      const e = ends.find((x) => x.partition === partition)!;
      if (f.position) return f.position.partition === partition ? Math.max(e.low, f.position.offset + 1) : e.high;
      if (byTime) return byTime.get(partition) ?? e.high;
      return e.high; // from now on
    },
    onPoison: (_t, partition, offset, err) => write(JSON.stringify({ partition, offset, error: `undecodable: ${String(err)}` })),
    onBatch: async (b) => {
      for (const r of b.records) {
        write(
          JSON.stringify({
            position: `${r.partition}:${r.offset}`,
            key: r.key,
            type: r.event.type,
            version: r.event.version,
            meta: r.meta,
            data: r.event.data,
          }),
        );
      }
    },
  });
  await new Promise<void>((resolve) => {
    if (signal?.aborted) resolve();
    signal?.addEventListener('abort', () => resolve());
  });
  await consumer.stop();
}
