// A migration is history: it must make today what it made when it first ran, so it imports nothing
// that changes with today's code — only kysely and frozen helpers beside it.
import { readdirSync, readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

const DIRS = ['../../projections/migrations/', '../../infra/migrations/'].map((d) => new URL(d, import.meta.url));
const files = DIRS.flatMap((dir) =>
  readdirSync(dir)
    .filter((f) => /^\d{4}_.*\.ts$/.test(f))
    .map((f) => new URL(f, dir)),
);

it.each(files.map((url) => [url.pathname.split('/').slice(-3).join('/'), url] as const))(
  '%s imports only kysely and frozen helpers',
  (file, url) => {
    const imports = [...readFileSync(url, 'utf8').matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
    for (const from of imports) expect(from === 'kysely' || /^\.\/[\w-]+\.ts$/.test(from!), `${file} imports ${from}`).toBe(true);
  },
);
