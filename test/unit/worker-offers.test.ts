// A worker with no room keeps the jobs it was offered and starts them the moment a run ends, rather
// than leaving them to the sweep (which waits for a queued job to be two seconds old).
import { expect, it } from 'vitest';
import { encodeJob } from '../../domain/encodes/job.ts';
import type { EventStore } from '../../infra/eventstore/port.ts';
import { createLogger } from '../../infra/logger.ts';
import type { Config } from '../../infra/config.ts';
import { Worker, type WorkerDeps } from '../../apps/worker/worker.ts';

it('a job offered while busy starts as soon as the running one ends, in the order offered', async () => {
  // A store whose loads wait until the test lets them go; a job that does not exist ends its run at once.
  const loads: string[] = [];
  const release = new Map<string, () => void>();
  const store = {
    load: (stream: string) => {
      loads.push(stream);
      return new Promise((resolve) => release.set(stream, () => resolve({ state: encodeJob.initialState(), version: 0 })));
    },
  } as unknown as EventStore;
  const config = { workerConcurrency: 1, workerLeaseMs: 15_000 } as Config;
  const worker = new Worker({ store, config, logger: createLogger('test', 'silent') } as unknown as WorkerDeps);

  expect(worker.offer('a')).toBe(true);
  expect(worker.offer('b')).toBe(false);
  expect(worker.offer('c')).toBe(false);
  expect(loads).toHaveLength(1);

  release.get(loads[0]!)!();
  await new Promise((r) => setTimeout(r, 10));
  expect(loads).toHaveLength(2);
  expect(loads[1]).toContain('b');
  expect(worker.busy).toBe(1);

  release.get(loads[1]!)!();
  await new Promise((r) => setTimeout(r, 10));
  expect(loads).toHaveLength(3);
  expect(loads[2]).toContain('c');
  release.get(loads[2]!)!();
  await new Promise((r) => setTimeout(r, 10));
  expect(worker.busy).toBe(0);
  await worker.stop();
});
