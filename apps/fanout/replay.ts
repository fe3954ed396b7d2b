// Replays a channel's captions between two times at their original pacing times `speed`, from the
// read model, on the same socket as live subscriptions and other replays.
import { formatPosition } from '../../domain/position.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';
import type { Client } from './hub.ts';
import { MAX_REPLAYS, errorMessage, refusal, replayCaptionMessage, replayEndMessage, replayStartedMessage } from './protocol.ts';
import { wakeableSleep } from '../../infra/retry.ts';

export type ReplayRow = Pick<CaptionFragmentReceived, 'channel' | 'station' | 'seq' | 'text' | 'start' | 'end' | 'mode' | 'lang'> & {
  partition: number;
  offset: number;
};

export interface ReplaySource {
  /** Captions of a channel with from <= start < to, after a (start, offset) key, in that order. */
  page(
    channel: string,
    from: number,
    to: number,
    after: { start: number; offset: number } | undefined,
    limit: number,
  ): Promise<ReplayRow[]>;
}

export interface ReplayRequest {
  channel: string;
  from: number;
  to: number;
  speed: number;
  id: string;
}

const PAGE = 500;
/** The longest setTimeout can wait; a longer delay fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Replayer {
  private readonly running = new WeakMap<Client, Map<string, () => void>>();

  constructor(
    private readonly source: ReplaySource,
    private readonly maxBackpressure: number,
  ) {}

  start(client: Client, r: ReplayRequest): void {
    const mine = this.running.get(client) ?? new Map<string, () => void>();
    this.running.set(client, mine);
    if (mine.has(r.id))
      return this.send(client, errorMessage('bad_request', refusal('id', `a replay with id ${r.id} is already running`), r.channel));
    if (mine.size >= MAX_REPLAYS)
      return this.send(
        client,
        errorMessage('too_many_replays', refusal('op', `one replay too many: at most ${MAX_REPLAYS} at once per connection`), r.channel),
      );
    let stopped = false;
    const sleeper = wakeableSleep();
    mine.set(r.id, () => {
      stopped = true;
      sleeper.wake();
    });
    // A timer cannot wait longer than MAX_TIMER_MS: longer waits are taken in steps.
    const sleep = (ms: number) => sleeper.sleep(Math.min(ms, MAX_TIMER_MS));
    const gone = () => stopped || client.closed;

    void (async () => {
      this.send(client, replayStartedMessage(r.id, r.channel, r.from, r.to, r.speed));
      const origin = performance.now();
      let sent = 0;
      let after: { start: number; offset: number } | undefined;
      try {
        while (!gone()) {
          const rows = await this.source.page(r.channel, r.from, r.to, after, PAGE);
          for (const row of rows) {
            // A wait is taken in timer-sized steps, so a long one never fires early.
            const due = origin + (row.start - r.from) / r.speed;
            while (!gone() && due > performance.now()) await sleep(due - performance.now());
            while (!gone() && client.socket.bufferedAmount() > this.maxBackpressure / 2) await sleep(5);
            if (gone()) break;
            this.send(client, replayCaptionMessage(r.id, formatPosition(row), row));
            sent++;
          }
          if (rows.length < PAGE) break;
          after = { start: rows.at(-1)!.start, offset: rows.at(-1)!.offset };
        }
        this.send(client, replayEndMessage(r.id, r.channel, sent, stopped));
      } catch (err) {
        this.send(client, errorMessage('unavailable', { message: `replay ${r.id} stopped: ${(err as Error).message}` }, r.channel));
      } finally {
        mine.delete(r.id);
      }
    })();
  }

  stop(client: Client, id: string): void {
    const stop = this.running.get(client)?.get(id);
    if (stop) stop();
    else this.send(client, errorMessage('bad_request', refusal('id', `no running replay with id ${id}`)));
  }

  stopAll(client: Client): void {
    for (const stop of this.running.get(client)?.values() ?? []) stop();
  }

  private send(client: Client, message: string): void {
    if (!client.closed) client.socket.cork(() => client.socket.send(message));
  }
}
