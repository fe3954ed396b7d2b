// The castlog admin CLI.
import { loadConfig } from '../../infra/config.ts';
import { createDb } from '../../infra/db.ts';
import { addStation, listStations, removeStation } from '../../infra/stations.ts';
import { migrate } from '../../projections/migrate.ts';

const USAGE = `usage: castlog <command>

  stations add <name>      create a capture station; prints its key once
  stations list            list stations
  stations remove <name>   revoke a station's key

Environment: DATABASE_URL (see the README).`;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

async function main(argv: string[]): Promise<number> {
  const [group, command, arg] = argv;
  if (group !== 'stations' || !command) {
    console.error(USAGE);
    return group === 'help' || group === '--help' ? 0 : 2;
  }
  const db = createDb(loadConfig().databaseUrl, 1);
  try {
    await migrate(db);
    switch (command) {
      case 'add': {
        if (!arg || !NAME.test(arg)) throw new Error('station name must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}');
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
  } finally {
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
