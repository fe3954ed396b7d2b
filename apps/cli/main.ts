// The castlog admin CLI.
import { loadConfig } from '../../infra/config.ts';
import { createDb } from '../../infra/db.ts';
import type { Db, Database } from '../../projections/database.ts';
import { EventLog, type GroupMember } from '../../infra/kafka/index.ts';
import { createLogger } from '../../infra/logger.ts';
import { addStation, listStations, removeStation, STATION_NAME, STATION_NAME_RULE } from '../../infra/stations.ts';
import { migrate } from '../../projections/migrate.ts';
import { projectionStatus, rebuild, verifyCaptions } from '../projection-admin.ts';
import { sleep } from '../../infra/retry.ts';
import { tail } from './tail.ts';

const USAGE = `usage: castlog <command>

  stations add <name>             create a capture station; prints its key once
  stations list                   list stations
  stations remove <name>          revoke a station's key
  projections status              each projection's versions, positions, lag and rows
  projections rebuild <name>      build the next version beside the serving one, then swap
  projections verify captions     compare the log with the read model, per channel per hour
  tail <topic> [--from <position|time>]   decoded events as JSON lines (Ctrl-C stops)

Environment: DATABASE_URL, KAFKA_BROKERS, TOPIC_PREFIX (see the README).`;

function bar(progress: number, width = 30): string {
  const full = Math.round(progress * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(progress * 100).toFixed(1).padStart(5)}%`;
}

async function stations(db: Db, command: string | undefined, arg: string | undefined): Promise<number> {
  switch (command) {
    case 'add': {
      if (!arg || !STATION_NAME.test(arg)) throw new Error(`station name ${STATION_NAME_RULE}`);
      const key = await addStation(db, arg).catch((e: { code?: string }) => {
        throw e.code === '23505' ? new Error(`station ${arg} exists already`) : e;
      });
      console.error(`station ${arg} created; this key is shown only once:`);
      console.log(key);
      return 0;
    }
    case 'list':
      for (const s of await listStations(db)) console.log(`${s.name}\t${s.created_at.toISOString()}`);
      return 0;
    case 'remove':
      if (!arg) throw new Error('which station?');
      if (!(await removeStation(db, arg))) throw new Error(`no station ${arg}`);
      console.error(`station ${arg} removed`);
      return 0;
    default:
      console.error(USAGE);
      return 2;
  }
}

function runnersText(runners: GroupMember[]): string {
  if (!runners.length) return 'run by no projector: start one whose PROJECTIONS includes it';
  return `run by ${runners.length} projector${runners.length === 1 ? '' : 's'} (${runners.map((r) => r.host).join(', ')})`;
}

async function projections(db: Db, log: EventLog, command: string | undefined, arg: string | undefined): Promise<number> {
  switch (command) {
    case 'status': {
      for (const p of await projectionStatus(db, log)) {
        console.log(`${p.name}  serving v${p.current}${p.building !== null ? `, building v${p.building}` : ''}`);
        for (const v of p.versions) {
          console.log(
            `  v${v.version} ${v.role.padEnd(8)} lag ${String(v.lag).padStart(8)}  ${bar(v.progress)}  rows ${Object.entries(v.rows)
              .map(([t, n]) => `${t}=${n}`)
              .join(' ')}`,
          );
          console.log(`      ${runnersText(v.runners)}`);
          if (v.pastLogEnd > 0)
            console.log(`      past the end of the log by ${v.pastLogEnd} records: built from another log; rebuild ${p.name}`);
          for (const pos of v.positions) console.log(`      ${pos.topic}/${pos.partition}  at ${pos.next} of ${pos.end}`);
        }
      }
      return 0;
    }
    case 'rebuild': {
      if (!arg) throw new Error('which projection?');
      const version = await rebuild(db, arg);
      console.error(`building ${arg} v${version} from offset 0; v${version - 1} keeps serving until it has caught up`);
      const asked = Date.now();
      for (;;) {
        await sleep(500);
        const p = (await projectionStatus(db, log)).find((x) => x.name === arg)!;
        const building = p.versions.find((v) => v.version === version);
        if (p.current === version) {
          process.stderr.write(`\r${bar(1)}  swapped: ${arg} v${version} is serving\n`);
          return 0;
        }
        if (!building) throw new Error(`the build of v${version} was abandoned`);
        // A projector picks a new version up within a second or two; past that, nobody will.
        const idle = building.runners.length === 0 && Date.now() - asked > 15_000;
        process.stderr.write(`\r${bar(building.progress)}  lag ${building.lag}${idle ? `  (${runnersText([])})` : ''}   `);
      }
    }
    case 'verify': {
      if (arg !== 'captions') throw new Error('verify knows the captions projection');
      const result = await verifyCaptions(db, log);
      console.log(JSON.stringify(result, null, 2));
      return result.ok ? 0 : 1;
    }
    default:
      console.error(USAGE);
      return 2;
  }
}

async function main(argv: string[]): Promise<number> {
  const [group, command, arg, ...rest] = argv;
  if (group !== 'stations' && group !== 'projections' && group !== 'tail') {
    console.error(USAGE);
    return group === 'help' || group === '--help' ? 0 : 2;
  }
  const config = loadConfig();
  const db = createDb<Database>(config.databaseUrl, 2);
  const log = new EventLog(config.kafkaBrokers, config.topicPrefix, createLogger('cli', 'silent'));
  try {
    await migrate(db);
    if (group === 'stations') return await stations(db, command, arg);
    if (group === 'projections') return await projections(db, log, command, arg);
    // tail <topic> [--from X]
    if (!command) throw new Error('which topic?');
    const fromIndex = [arg, ...rest].indexOf('--from');
    const from = fromIndex >= 0 ? [arg, ...rest][fromIndex + 1] : undefined;
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    process.once('SIGTERM', () => stop.abort());
    await tail(log, command, from, (line) => process.stdout.write(`${line}\n`), stop.signal);
    return 0;
  } finally {
    await log.close();
    await db.destroy();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`castlog: ${err.message}`);
    process.exit(1);
  },
);
