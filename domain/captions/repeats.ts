// A station's repeated fragment. A capture station numbers its fragments per channel (seq) and,
// when it retries, sends some of them again; Kafka keeps both copies. Every reader drops the
// repeat by this one rule: a fragment whose seq is not above the last seq seen from its station on
// its channel is a repeat. In log order, so every reader keeps the same fragments: the live fanout
// (apps/fanout/feeds.ts), analytics (projections/analytics), verify (apps/projection-admin.ts), and
// the caption read model (projections/captions/projection.ts, seeded from its station_seqs). The
// cases in test/cases/station-repeats.ts hold this module and that projection to one answer. Pure: no I/O.

/** Seqs are never negative (ingest refuses them), so this stands for "none seen yet". */
export const NO_SEQ = -1;

/** True when `seq` is a repeat: not above the last seq seen from its station on its channel. */
export const isRepeat = (seq: number, lastSeq: number = NO_SEQ): boolean => seq <= lastSeq;

/** What the rule needs of a fragment. */
export interface StationFragment {
  channel: string;
  station: string;
  seq: number;
}

const keyOf = (channel: string, station: string) => `${channel}\u0000${station}`;

/** The last seq seen per station and channel, for readers that hold it in memory. */
export class LastSeqs {
  private readonly last = new Map<string, number>();

  /** Remembers a fragment and says true when it is new; false (and nothing changes) for a repeat. */
  admit(f: StationFragment): boolean {
    const key = keyOf(f.channel, f.station);
    if (isRepeat(f.seq, this.last.get(key))) return false;
    this.last.set(key, f.seq);
    return true;
  }

  /** Starts from a last seq seen before (a reader that keeps its seqs in a table, say). */
  seed(channel: string, station: string, seq: number): void {
    const key = keyOf(channel, station);
    this.last.set(key, Math.max(seq, this.last.get(key) ?? NO_SEQ));
  }

  /** The last seq seen from a station on a channel; undefined when none. */
  lastSeq(channel: string, station: string): number | undefined {
    return this.last.get(keyOf(channel, station));
  }
}
