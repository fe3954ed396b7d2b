// The development mailbox: the local SMTP server (apps/dev-mail) keeps each message it receives as
// a file, and the api's /mail page lists and shows them. A file is written under a temporary name
// and renamed, so a reader never sees half a message.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Messages kept; older ones are removed as new ones arrive. */
const KEEP = 500;
const NAME = /^(\d{13})-([0-9a-f]{8})\.eml$/;
const ID = /^\d{13}-[0-9a-f]{8}$/;

export interface StoredMail {
  id: string;
  receivedAt: number;
}

/** Keeps a received message; returns its id. */
export async function saveMail(dir: string, raw: Buffer, now = Date.now()): Promise<string> {
  await mkdir(dir, { recursive: true });
  const id = `${now}-${randomBytes(4).toString('hex')}`;
  const tmp = join(dir, `.${id}.tmp`);
  await writeFile(tmp, raw);
  await rename(tmp, join(dir, `${id}.eml`));
  const all = await listMail(dir);
  for (const old of all.slice(KEEP)) await rm(join(dir, `${old.id}.eml`), { force: true });
  return id;
}

/** The messages kept, newest first. */
export async function listMail(dir: string): Promise<StoredMail[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  return names
    .flatMap((n) => {
      const m = NAME.exec(n);
      return m ? [{ id: `${m[1]}-${m[2]}`, receivedAt: Number(m[1]) }] : [];
    })
    .sort((a, b) => b.id.localeCompare(a.id));
}

/** A kept message's bytes; undefined when there is no such message (or the id is not one). */
export async function readMail(dir: string, id: string): Promise<Buffer | undefined> {
  if (!ID.test(id)) return undefined;
  return readFile(join(dir, `${id}.eml`)).catch(() => undefined);
}
