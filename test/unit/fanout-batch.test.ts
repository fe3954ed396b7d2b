// Batch frames: negotiated per subscription; a client that did not ask keeps one caption per frame.
import { describe, expect, it } from 'vitest';
import { captionsFeed } from '../../apps/fanout/feeds.ts';
import { BATCH_MAX, Client, Hub, type Socket } from '../../apps/fanout/hub.ts';
import { isRefusal, parseClientMessage } from '../../apps/fanout/protocol.ts';
import { partitionFor } from '../../schemas/partitioner.ts';
import type { CaptionFragmentReceived } from '../../schemas/types.generated.ts';

const PARTITIONS = 3;
type Message = { type: string; channel?: string; position?: string; batch?: boolean; messages?: Message[] };

class FakeSocket implements Socket {
  sent: string[] = [];
  buffered = 0;
  send(message: string): number {
    this.sent.push(message);
    return 1;
  }
  bufferedAmount = () => this.buffered;
  cork = (fn: () => void) => fn();
  end(): void {}
  frames = () => this.sent.map((s) => JSON.parse(s) as Message);
  /** Positions of the captions received, batch frames opened. */
  positions = () =>
    this.frames()
      .flatMap((m) => (m.type === 'batch' ? m.messages! : [m]))
      .filter((m) => m.type === 'caption')
      .map((m) => m.position);
}

function setup() {
  const hub = new Hub({
    partitions: PARTITIONS,
    startOffsets: Array(PARTITIONS).fill(0),
    historyCapacity: 10_000,
    maxBackpressure: 1_000_000,
    stats: { delivered: () => undefined, slowClosed: () => undefined, fannedOut: () => undefined },
    feed: captionsFeed(),
  });
  const channel = 'news';
  const partition = partitionFor(channel, PARTITIONS);
  let offset = 0;
  let seq = 0;
  /** One read from Kafka holding n captions of the channel. */
  const publish = (n: number) => {
    const records = Array.from({ length: n }, () => {
      seq++;
      const data: CaptionFragmentReceived = {
        channel,
        station: 'studio',
        seq,
        text: `#${seq}`,
        start: seq,
        end: seq + 1,
        mode: 'rollup',
        lang: 'en',
        receivedAt: Date.now(),
      };
      return { offset: offset++, data };
    });
    hub.onRecords(partition, records, offset);
  };
  const connect = () => {
    const socket = new FakeSocket();
    return { socket, client: new Client(socket) };
  };
  return { hub, channel, partition, publish, connect };
}

describe('batch frames', () => {
  it('go only to a subscription that asked, carry each caption as it would come alone, and a lone caption comes alone', () => {
    const { hub, channel, publish, connect } = setup();
    const plain = connect();
    const batched = connect();
    hub.subscribe(plain.client, channel);
    hub.subscribe(batched.client, channel, undefined, true);
    expect(plain.socket.frames()[0]).toEqual({ type: 'subscribed', channel, position: expect.any(String), recovered: false });
    expect(batched.socket.frames()[0]).toMatchObject({ type: 'subscribed', channel, batch: true });
    publish(3);
    publish(1);
    // The plain client: four frames, one caption each.
    expect(
      plain.socket
        .frames()
        .slice(1)
        .map((m) => m.type),
    ).toEqual(['caption', 'caption', 'caption', 'caption']);
    // The batched one: the three captions read together in one frame, the lone one alone.
    const frames = batched.socket.frames().slice(1);
    expect(frames.map((m) => m.type)).toEqual(['batch', 'caption']);
    expect(frames[0]!.channel).toBe(channel);
    expect(frames[0]!.messages).toEqual(plain.socket.frames().slice(1, 4));
    expect(batched.socket.positions()).toEqual(plain.socket.positions());
  });

  it('carry a catch-up backlog in frames of at most BATCH_MAX captions, and resuming after one is exact', () => {
    const { hub, channel, partition, publish, connect } = setup();
    for (let i = 0; i < 600; i++) publish(1);
    const { socket, client } = connect();
    hub.subscribe(client, channel, `${partition}:-1`, true);
    const frames = socket.frames().slice(1);
    expect(frames.map((m) => m.messages?.length ?? 1)).toEqual([BATCH_MAX, BATCH_MAX, 600 - 2 * BATCH_MAX]);
    const positions = socket.positions();
    expect(positions).toHaveLength(600);
    // Resume after the last caption of the first batch: exactly what follows.
    const again = connect();
    hub.subscribe(again.client, channel, positions[BATCH_MAX - 1], true);
    expect(again.socket.positions()).toEqual(positions.slice(BATCH_MAX));
  });

  it('are asked for with batch: true; another type is refused naming batch', () => {
    expect(parseClientMessage('{"op":"subscribe","channel":"news","batch":true}')).toEqual({
      op: 'subscribe',
      channel: 'news',
      batch: true,
    });
    expect(parseClientMessage('{"op":"subscribe","channel":"news","batch":false}')).toEqual({ op: 'subscribe', channel: 'news' });
    const refused = parseClientMessage('{"op":"subscribe","channel":"news","batch":"yes"}');
    expect(isRefusal(refused) && refused.field).toBe('batch');
  });
});
