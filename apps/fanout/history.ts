// The recent caption messages of one partition, ready to send, bounded in count. Clients that
// resume from a position inside it are served from memory; entries are indexed per channel so
// thousands of clients resuming at once each cost a binary search, not a scan.
export interface Entry {
  offset: number;
  channel: string;
  /** The serialized {"type":"caption",...} message. */
  json: string;
}

class Queue<T> {
  items: T[] = [];
  head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(x: T): void {
    this.items.push(x);
  }
  shift(): T | undefined {
    const x = this.items[this.head++];
    // Compact now and then instead of shifting an array on every eviction.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
}

export class PartitionHistory {
  private readonly order = new Queue<Entry>();
  private readonly byChannel = new Map<string, Queue<Entry>>();
  /** Offset the next record must have. */
  next: number;
  /** Oldest offset covered: every delivered record in [start, next) is here. */
  start: number;

  constructor(
    readonly capacity: number,
    from: number,
  ) {
    this.next = from;
    this.start = from;
  }

  /** Records a consumed offset; entry is undefined for a record that is not delivered (a repeat). */
  add(offset: number, entry: Entry | undefined): void {
    this.next = offset + 1;
    if (!entry) return;
    this.order.push(entry);
    let q = this.byChannel.get(entry.channel);
    if (!q) this.byChannel.set(entry.channel, (q = new Queue()));
    q.push(entry);
    if (this.order.length > this.capacity) {
      const evicted = this.order.shift()!;
      this.start = evicted.offset + 1;
      const cq = this.byChannel.get(evicted.channel)!;
      cq.shift();
      if (cq.length === 0) this.byChannel.delete(evicted.channel);
    }
  }

  /** True when every record after `offset` is still here. */
  covers(offset: number): boolean {
    return offset + 1 >= this.start;
  }

  /** Entries of a channel after an offset, oldest first. */
  after(channel: string, offset: number): Entry[] {
    const q = this.byChannel.get(channel);
    if (!q) return [];
    let lo = q.head;
    let hi = q.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (q.items[mid]!.offset > offset) hi = mid;
      else lo = mid + 1;
    }
    return q.items.slice(lo);
  }
}
