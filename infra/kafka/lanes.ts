// One queue of work per partition: each runs its tasks in order, and says how many are waiting.
export class Lanes {
  private readonly lanes = new Map<string, Lane>();

  get(topic: string, partition: number): Lane {
    const key = `${topic}/${partition}`;
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = new Lane()));
    return lane;
  }

  async drained(): Promise<void> {
    await Promise.all([...this.lanes.values()].map((l) => l.waitBelow(1)));
  }
}

export class Lane {
  private tail: Promise<unknown> = Promise.resolve();
  private depth = 0;
  private waiters: (() => void)[] = [];

  push(task: () => Promise<unknown>): void {
    this.depth++;
    this.tail = this.tail
      .then(task)
      .catch(() => undefined)
      .finally(() => {
        this.depth--;
        for (const w of this.waiters.splice(0)) w();
      });
  }

  /** Resolves once fewer than n tasks are queued or running. */
  async waitBelow(n: number): Promise<void> {
    while (this.depth >= n) await new Promise<void>((r) => this.waiters.push(r));
  }
}
