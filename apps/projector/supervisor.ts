// Keeps the right projection versions running: the serving ones, reading each topic once between
// them, and each one being built, alone. When one being built has caught up, it is swapped in, the
// readers of its topics start again with it, and the old one stops.
import type { Db } from '../../projections/database.ts';
import type { EventLog } from '../../infra/kafka/index.ts';
import type { Logger } from '../../infra/logger.ts';
import type { Registry } from '../../infra/metrics.ts';
import { PROJECTIONS } from '../../projections/catalog.ts';
import { ensureRegistered, schemaOf, trySwap, versions } from '../../projections/versions.ts';
import { planReaders, runPlannedReader, runProjection, type RunningProjection } from './runner.ts';

/** Runs the named projections (each projector may run some; every projection must run somewhere). */
export function superviseProjections(
  deps: { log: EventLog; db: Db; logger: Logger; metrics: Registry },
  names: readonly string[],
  everyMs = 1000,
): { stop: () => Promise<void> } {
  const mine = new Map(names.map((name) => [name, PROJECTIONS[name]!]));
  const running = new Map<string, RunningProjection>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let busy: Promise<void> = Promise.resolve();

  const swapIfReady = async (name: string, version: number) => {
    if (await trySwap(deps.db, PROJECTIONS[name]!, version)) {
      deps.logger.info({ projection: name, version }, 'rebuilt version swapped in');
      void reconcileSoon();
    }
  };

  // A swap attempt holds the serving version still while the new one closes the gap, so it must
  // not run inside the new version's own batch handling (that would stop the very projector it
  // waits for): after a batch, one attempt is queued behind the supervisor's other work.
  const queued = new Set<string>();
  const swapSoon = (name: string, version: number) => {
    if (queued.has(name)) return;
    queued.add(name);
    busy = busy
      .then(() => (queued.delete(name), swapIfReady(name, version)))
      .catch((err) => deps.logger.warn({ err }, 'projection supervisor'));
  };

  let registered = false;
  async function reconcile(): Promise<void> {
    if (!registered) {
      for (const p of mine.values()) await ensureRegistered(deps.db, p);
      registered = true;
    }
    const rows = (await versions(deps.db)).filter((row) => mine.has(row.name));
    // Serving versions read each topic once between them; a version being built reads alone, from
    // the log's start, and is swapped in once it has caught up.
    const wanted = new Map<string, () => Promise<RunningProjection>>();
    for (const plan of planReaders(rows.map((row) => ({ projection: mine.get(row.name)!, version: row.current }))))
      wanted.set(plan.group, () => runPlannedReader(deps, plan));
    for (const row of rows) {
      const version = row.building;
      if (version === null) continue;
      wanted.set(`building ${schemaOf(row.name, version)}`, () =>
        runProjection(deps, mine.get(row.name)!, version, {
          afterBatch: async (lag) => (lag === 0 ? swapSoon(row.name, version) : undefined),
        }),
      );
    }
    for (const [id, r] of running) {
      if (wanted.has(id)) continue;
      running.delete(id);
      await r.stop();
      deps.logger.info({ reader: id }, 'projection reader stopped');
    }
    for (const [id, start] of wanted) if (!running.has(id)) running.set(id, await start());
    for (const row of rows) {
      // Also try on a timer: a version may catch up on a partition that then stays quiet.
      if (row.building !== null) await swapIfReady(row.name, row.building);
    }
  }

  const reconcileSoon = () => (busy = busy.then(reconcile).catch((err) => deps.logger.warn({ err }, 'projection supervisor')));
  const tick = () => {
    if (stopped) return;
    void reconcileSoon().then(() => {
      if (!stopped) timer = setTimeout(tick, everyMs);
    });
  };
  tick();
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await busy;
      await Promise.all([...running.values()].map((r) => r.stop()));
    },
  };
}
