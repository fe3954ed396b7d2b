// One table of cases for the rule that drops a station's repeated fragment
// (domain/captions/repeats.ts): test/unit/repeats.test.ts runs it against the module, and
// test/integration/station-repeats.test.ts against the caption projection's SQL and every reader
// of the real log. A fragment is written "channel/station#seq".

export interface RepeatCase {
  name: string;
  /** Fragments in log order, in the batches a reader is handed them in. */
  batches: string[][];
  /** The fragments kept, in log order. */
  kept: string[];
}

export const REPEAT_CASES: RepeatCase[] = [
  { name: 'fragments in order are all kept', batches: [['a/s#1', 'a/s#2', 'a/s#3']], kept: ['a/s#1', 'a/s#2', 'a/s#3'] },
  {
    name: 'seq 0 is a fragment like any other, and a repeat of it is dropped',
    batches: [['a/s#0', 'a/s#0', 'a/s#1']],
    kept: ['a/s#0', 'a/s#1'],
  },
  { name: 'a retry of the last fragment is dropped', batches: [['a/s#1', 'a/s#2', 'a/s#2', 'a/s#3']], kept: ['a/s#1', 'a/s#2', 'a/s#3'] },
  { name: 'gaps are allowed', batches: [['a/s#1', 'a/s#5', 'a/s#9']], kept: ['a/s#1', 'a/s#5', 'a/s#9'] },
  {
    name: 'a late fragment below the last one is dropped, not filled in',
    batches: [['a/s#5', 'a/s#3', 'a/s#4', 'a/s#6']],
    kept: ['a/s#5', 'a/s#6'],
  },
  {
    name: 'a retried run is dropped up to where it goes past the last seq',
    batches: [
      ['a/s#1', 'a/s#2', 'a/s#3'],
      ['a/s#2', 'a/s#3', 'a/s#4'],
    ],
    kept: ['a/s#1', 'a/s#2', 'a/s#3', 'a/s#4'],
  },
  {
    name: 'the last seq of an earlier batch counts',
    batches: [['a/s#1', 'a/s#2'], ['a/s#2'], ['a/s#1', 'a/s#3']],
    kept: ['a/s#1', 'a/s#2', 'a/s#3'],
  },
  { name: 'a dropped fragment does not lower the bar', batches: [['a/s#3'], ['a/s#1', 'a/s#2', 'a/s#4']], kept: ['a/s#3', 'a/s#4'] },
  {
    name: 'stations on one channel count apart',
    batches: [['a/s#1', 'a/t#1', 'a/s#1', 'a/t#2', 'a/s#2']],
    kept: ['a/s#1', 'a/t#1', 'a/t#2', 'a/s#2'],
  },
  {
    name: 'one station counts apart on each channel',
    batches: [
      ['a/s#5', 'b/s#1'],
      ['a/s#1', 'b/s#2'],
    ],
    kept: ['a/s#5', 'b/s#1', 'b/s#2'],
  },
];

/** "a/s#3" -> its parts. */
export function parseFragment(text: string): { channel: string; station: string; seq: number } {
  const m = /^([^/]+)\/([^#]+)#(\d+)$/.exec(text);
  if (!m) throw new Error(`not a case fragment: ${text}`);
  return { channel: m[1]!, station: m[2]!, seq: Number(m[3]) };
}

export const formatFragment = (f: { channel: string; station: string; seq: number }) => `${f.channel}/${f.station}#${f.seq}`;
