// Scenario: rebuilding the captions read model from offset 0. N events go to Kafka, the real
// projector builds v1, then `rebuild` (as `castlog projections rebuild captions` does) creates v2
// and the same projector builds it beside v1 and swaps it in; timed from the request to the swap.
// Baseline in the same run: the projector building v1 from the same log.
import { sql } from 'kysely';
import type { NewEvent } from '../../infra/kafka/index.ts';
import { rebuild } from '../../apps/projection-admin.ts';
import { System } from '../support/system.ts';
import { BenchCaptions, channelNames, knob, now, sleep, startApp } from './common.ts';
import { dropSystem } from './ingest.ts';

export interface RebuildResult {
  events: number;
  appendSeconds: number;
  firstBuild: { seconds: number; eventsPerSec: number };
  rebuild: { seconds: number; eventsPerSec: number; rowsVerified: boolean; catchUpSeconds: number; indexAndSwapSeconds: number };
  /** Rebuild time over first-build time: the cost of building beside a serving version and swapping. */
  ratioToFirstBuild: number;
  targetSeconds: number;
}

async function applied(sys: System, key: string): Promise<number> {
  const { rows } = await sql<{
    n: string | null;
  }>`SELECT sum(next_offset) AS n FROM projection_positions WHERE projection = ${key}`.execute(sys.db);
  return Number(rows[0]?.n ?? 0);
}

export async function rebuildBench(log: (s: string) => void): Promise<RebuildResult> {
  const n = knob('REBUILD_EVENTS', 1_000_000, 50_000);
  const chunk = 10_000;
  const channels = channelNames(100);
  const sys = await System.create();
  try {
    log(`rebuild: appending ${n.toLocaleString()} caption events`);
    const captions = new BenchCaptions();
    const ta = now();
    for (let i = 0; i < n; i += chunk) {
      const evs: NewEvent<'CaptionFragmentReceived'>[] = [];
      for (let j = i; j < Math.min(n, i + chunk); j++) evs.push(captions.next(channels[j % channels.length]!));
      for (let attempt = 1; ; attempt++) {
        try {
          await sys.log.append(evs);
          break;
        } catch (e) {
          if (attempt >= 5) throw e;
          await sleep(200); // repeats are dropped by the projection
        }
      }
    }
    const appendSeconds = (now() - ta) / 1000;
    const inLog = await sys.captionsInLog();

    log(`rebuild: appended in ${appendSeconds.toFixed(1)}s; first build (v1)`);
    const t1 = now();
    await startApp(sys, 'projector');
    while ((await applied(sys, 'captions_v1')) < inLog) await sleep(50);
    const first = (now() - t1) / 1000;

    log(`rebuild: v1 built in ${first.toFixed(1)}s; rebuilding v2 beside it`);
    const t2 = now();
    const version = await rebuild(sys.db, 'captions');
    const deadline = Date.now() + 600_000;
    let caughtUp: number | undefined;
    for (;;) {
      const { rows } = await sql<{ current: number }>`SELECT current FROM projection_versions WHERE name = 'captions'`.execute(sys.db);
      if (rows[0]?.current === version) break;
      if (caughtUp === undefined && (await applied(sys, `captions_v${version}`)) >= inLog) caughtUp = now();
      if (Date.now() > deadline) throw new Error('the rebuild did not finish in 10 minutes');
      await sleep(50);
    }
    const seconds = (now() - t2) / 1000;
    const catchUpSeconds = ((caughtUp ?? now()) - t2) / 1000;
    const { rows } = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM ${sql.id(`captions_v${version}`, 'caption_fragments')}`.execute(sys.db);
    return {
      events: n,
      appendSeconds: Math.round(appendSeconds * 10) / 10,
      firstBuild: { seconds: Math.round(first * 100) / 100, eventsPerSec: Math.round(n / first) },
      rebuild: {
        seconds: Math.round(seconds * 100) / 100,
        eventsPerSec: Math.round(n / seconds),
        rowsVerified: rows[0]?.n === n,
        catchUpSeconds: Math.round(catchUpSeconds * 100) / 100,
        indexAndSwapSeconds: Math.round((seconds - catchUpSeconds) * 100) / 100,
      },
      ratioToFirstBuild: Math.round((seconds / first) * 100) / 100,
      targetSeconds: 30,
    };
  } finally {
    await sys.stop();
    await dropSystem(sys);
  }
}
