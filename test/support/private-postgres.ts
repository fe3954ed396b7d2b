// A Postgres server of a test's own (initdb into a temporary directory, on a free port), for a
// test that must stop and restart Postgres without breaking every other test on the machine.
// initdb and postgres refuse to run as root: as root, they run as the `postgres` user.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './system.ts';

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const version = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))[0]
    : undefined;
  if (!version) throw new Error(`no Postgres server binaries under ${root}`);
  return join(root, version, 'bin');
}

export class PrivatePostgres {
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly bin: string,
  ) {}

  /** initdb, then start on a free port (TCP on 127.0.0.1 only, trust auth, user postgres). */
  static async start(): Promise<PrivatePostgres> {
    const bin = binDir();
    const dir = mkdtempSync(join(tmpdir(), 'castlog-pg-'));
    if (process.getuid?.() === 0) {
      const [uid, gid] = ['-u', '-g'].map((flag) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim()));
      chownSync(dir, uid!, gid!);
    }
    const pg = new PrivatePostgres(await freePort(), dir, bin);
    await pg.run('initdb', ['-D', pg.dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync']);
    await pg.startAgain();
    return pg;
  }

  private get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** A URL of a database on this server (created by the app, or by ensureDatabase). */
  url(database: string): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  private async run(tool: string, args: string[]): Promise<void> {
    const [cmd, argv] =
      process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', join(this.bin, tool), ...args]] : [join(this.bin, tool), args];
    await promisify(execFile)(cmd, argv, { encoding: 'utf8' }).catch((e: { stderr?: string; message: string }) => {
      throw new Error(`${tool} ${args.join(' ')} failed: ${e.stderr || e.message}`);
    });
  }

  /** Starts the server (again, on the same port and data) and waits until it accepts connections. */
  startAgain(): Promise<void> {
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c max_connections=200`;
    return this.run('pg_ctl', ['-D', this.dataDir, '-l', join(this.dir, 'server.log'), '-o', options, '-w', '-t', '60', 'start']);
  }

  /** Stops the server the hard way (`-m immediate`): every session is cut, as in a crash. */
  stopImmediately(): Promise<void> {
    return this.run('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop']);
  }

  /** Stops the server and removes its data. */
  async destroy(): Promise<void> {
    await this.stopImmediately().catch(() => undefined); // already stopped
    rmSync(this.dir, { recursive: true, force: true });
  }
}
