// A migration is history: it must make today what it made when it first ran, so it imports nothing
// that changes with today's code — only kysely and frozen helpers beside it.
import { readdirSync, readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

const DIR = new URL('../../projections/migrations/', import.meta.url);

it.each(readdirSync(DIR).filter((f) => /^\d{4}_.*\.ts$/.test(f)))('%s imports only kysely and frozen helpers', (file) => {
  const imports = [...readFileSync(new URL(file, DIR), 'utf8').matchAll(/^import .* from '([^']+)';$/gm)].map((m) => m[1]);
  for (const from of imports) expect(from === 'kysely' || /^\.\/[\w-]+\.ts$/.test(from!), `${file} imports ${from}`).toBe(true);
});
