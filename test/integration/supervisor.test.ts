// The supervisor behind `npm start`, with small real processes: one that keeps dying is started
// again after pauses that double, the others go on untouched, and stop() ends everything.
import { describe, expect, it } from 'vitest';
import { Supervisor } from '../../apps/supervisor.ts';
import { waitFor } from '../support/system.ts';

const node = (code: string) => ({ command: process.execPath, args: ['-e', code] });

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the supervisor', () => {
  it('restarts a process that dies, with a pause that doubles, and leaves the others running', async () => {
    const said: string[] = [];
    const sup = new Supervisor(
      [
        { name: 'crasher', ...node('setTimeout(() => process.exit(3), 50)') },
        { name: 'steady', ...node('setInterval(() => {}, 1000)') },
      ],
      { cwd: process.cwd(), env: process.env, say: (l) => said.push(l), initialDelayMs: 100, maxDelayMs: 400, healthyAfterMs: 60_000 },
    );
    sup.start();
    try {
      const steady = await waitFor('steady started', () => sup.pids().steady);
      await waitFor(
        'four deaths of the crasher',
        () => said.filter((l) => l.startsWith('castlog: crasher exited')).length >= 4,
        20_000,
        20,
      );
      const deaths = said.filter((l) => l.startsWith('castlog: crasher exited'));
      for (const l of deaths) expect(l).toMatch(/^castlog: crasher exited with code 3 after \d+\.\d s; next attempt in \d+\.\d s$/);
      expect(deaths.slice(0, 4).map((l) => /next attempt in (\S+) s/.exec(l)![1])).toEqual(['0.1', '0.2', '0.4', '0.4']);
      // The steady one was never touched.
      expect(sup.pids().steady).toBe(steady);
      expect(said.filter((l) => l.startsWith('castlog: steady ') && !l.startsWith('castlog: steady started'))).toEqual([]);
    } finally {
      await sup.stop();
    }
  });

  it('reports a process killed by a signal, starts it again, and stop() ends every process', async () => {
    const said: string[] = [];
    const sup = new Supervisor(
      [
        { name: 'a', ...node('setInterval(() => {}, 1000)') },
        { name: 'b', ...node('setInterval(() => {}, 1000)') },
      ],
      { cwd: process.cwd(), env: process.env, say: (l) => said.push(l), initialDelayMs: 100 },
    );
    sup.start();
    const first = await waitFor('a started', () => sup.pids().a);
    process.kill(first, 'SIGKILL');
    await waitFor('a started again', () => sup.pids().a !== undefined && sup.pids().a !== first, 10_000, 20);
    expect(said).toContainEqual(expect.stringMatching(/^castlog: a was killed by SIGKILL after \d+\.\d s; next attempt in 0\.1 s$/));
    const pids = Object.values(sup.pids());
    expect(pids.every(alive)).toBe(true);
    await sup.stop();
    expect(pids.filter(alive)).toEqual([]);
  });
});
