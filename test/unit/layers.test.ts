// Dependencies point one way: apps → projections → infra → domain → schemas. A file may import
// its own layer and those below it, never one above; domain imports no client library.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const LAYERS = ['schemas', 'domain', 'infra', 'projections', 'apps'];
const CLIENTS = ['kafkajs', 'pg', 'kysely', 'fastify', 'uWebSockets.js', 'node:fs', 'node:net', 'node:http', 'node:child_process'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

const layerOf = (path: string) => LAYERS.indexOf(relative(ROOT, path).split('/')[0]!);

it('no file imports a layer above its own', () => {
  const wrong: string[] = [];
  for (const file of LAYERS.flatMap((l) => files(join(ROOT, l)))) {
    for (const [, spec] of readFileSync(file, 'utf8').matchAll(/^(?:import|export) [^;]*? from '([^']+)';/gms)) {
      if (spec!.startsWith('.')) {
        const target = resolve(file, '..', spec!);
        const to = layerOf(target);
        if (to > layerOf(file)) wrong.push(`${relative(ROOT, file)} imports ${relative(ROOT, target)}`);
      } else if (layerOf(file) === LAYERS.indexOf('domain') && CLIENTS.includes(spec!)) {
        wrong.push(`${relative(ROOT, file)} (domain) imports ${spec}`);
      }
    }
  }
  expect(wrong).toEqual([]);
});
