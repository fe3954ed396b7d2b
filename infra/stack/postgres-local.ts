// The local Postgres: the machine's own server on 127.0.0.1:5432, started if it is down.
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import pg from 'pg';
import { waitForPort, isPortOpen } from './ports.ts';

export async function ensureLocalPostgres(): Promise<void> {
  if (await isPortOpen(5432)) return;
  if (!existsSync('/etc/postgresql')) {
    throw new Error('no Postgres answers on 127.0.0.1:5432 and none is installed; set DATABASE_URL');
  }
  for (const version of readdirSync('/etc/postgresql')) {
    spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'inherit' });
  }
  await waitForPort(5432, 30_000);
}

/** Creates the database named in `url` if it does not exist, connecting to its server's `postgres` db. */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
  } catch (e) {
    if ((e as { code?: string }).code !== '42P04') throw e; // created concurrently
  } finally {
    await client.end();
  }
}
