// A budget of concurrent work: at most `concurrency` at once, at most `maxQueued` waiting, none
// waiting longer than `maxWaitMs`. Past that the work is refused at once with Overloaded, so a
// burst of one kind of request waits in its own line and is told "busy", never "down", and never
// takes the connections another kind of request needs.
export class Overloaded extends Error {
  constructor(
    readonly what: string,
    readonly retryAfterSeconds = 1,
  ) {
    super(`busy: too many ${what} at once; try again in ${retryAfterSeconds} s`);
  }
}

export interface GateOptions {
  /** What the gate admits, for the refusal's words ("searches", "decisions"). */
  name: string;
  concurrency: number;
  maxQueued: number;
  maxWaitMs: number;
}

export class Gate {
  private running = 0;
  private readonly waiting: { admit: () => void; timer: NodeJS.Timeout }[] = [];

  constructor(readonly options: GateOptions) {}

  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    await this.enter();
    try {
      return await work();
    } finally {
      this.leave();
    }
  }

  private enter(): Promise<void> {
    const { concurrency, maxQueued, maxWaitMs, name } = this.options;
    if (this.running < concurrency) {
      this.running++;
      return Promise.resolve();
    }
    if (this.waiting.length >= maxQueued) return Promise.reject(new Overloaded(name));
    return new Promise<void>((resolve, reject) => {
      const entry = {
        admit: () => (clearTimeout(entry.timer), this.running++, resolve()),
        timer: setTimeout(() => {
          this.waiting.splice(this.waiting.indexOf(entry), 1);
          reject(new Overloaded(name));
        }, maxWaitMs),
      };
      this.waiting.push(entry);
    });
  }

  private leave(): void {
    this.running--;
    this.waiting.shift()?.admit();
  }
}
