// The rule every schema change must keep: events already in the log stay readable by new code
// (backward), and events written by new code stay readable by code not yet upgraded (forward).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { TOPICS, topicOf } from '../../schemas/catalog.ts';
import { AVRO_DIR, SchemaRegistry, parseSchema, type SchemaVersion } from '../../schemas/registry.ts';
import { generateTypes } from '../../schemas/typegen.ts';
import type { EventType } from '../../schemas/types.generated.ts';

/** Every incompatibility between versions of one event, each version against every earlier one. */
function incompatibilities(versions: SchemaVersion[]): string[] {
  const problems: string[] = [];
  const canRead = (reader: SchemaVersion, writer: SchemaVersion) => {
    try {
      reader.type.createResolver(writer.type);
    } catch (err) {
      problems.push(`${reader.event} v${reader.version} cannot read v${writer.version}: ${(err as Error).message}`);
    }
  };
  for (const [i, newer] of versions.entries()) {
    for (const older of versions.slice(0, i)) {
      canRead(newer, older); // backward: new code reads old events
      canRead(older, newer); // forward: old code reads new events
    }
  }
  return problems;
}

const registry = SchemaRegistry.load();

describe('the schemas in schemas/avro', () => {
  it.each(registry.events())('%s: every version reads every earlier one and is readable by it', (event) => {
    expect(incompatibilities(registry.history(event))).toEqual([]);
  });

  it('every file is named <Event>.v<N>.avsc (a misnamed file would be silently ignored)', () => {
    const walk = (dir: string): string[] =>
      readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? walk(join(dir, name)) : [join(dir, name)]));
    const files = walk(AVRO_DIR);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(file.split('/').pop(), relative(AVRO_DIR, file)).toMatch(/^[A-Z][A-Za-z0-9]*\.v[1-9][0-9]*\.avsc$/);
  });

  it.each(registry.events())('%s: versions run 1..N with no hole and no duplicate', (event) => {
    const versions = registry.history(event).map((s) => s.version);
    expect(versions).toEqual(versions.map((_, i) => i + 1));
  });

  it.each(registry.events())('%s: every version is a record named after its file', (event) => {
    for (const s of registry.history(event)) {
      expect(s.type.typeName, s.file).toBe('record');
      expect(s.type.name?.split('.').pop(), s.file).toBe(event);
    }
  });

  it('no two versions share a fingerprint, so the bytes name one writer', () => {
    const all = registry.events().flatMap((e) => registry.history(e));
    expect(new Set(all.map((s) => s.fingerprintHex)).size).toBe(all.length);
  });

  it('every event of the topic catalog (schemas/catalog.ts) has a schema', () => {
    const events = registry.events();
    for (const [topic, spec] of Object.entries(TOPICS)) {
      for (const event of spec.events) expect(events, `topic ${topic}`).toContain(event);
    }
  });

  it('every schema has a topic in the catalog, or it could never be appended', () => {
    const orphans = registry.events().filter((event) => {
      try {
        topicOf(event as EventType);
        return false;
      } catch {
        return true;
      }
    });
    expect(orphans, 'events with a schema but no topic in schemas/catalog.ts').toEqual([]);
  });

  it('schemas/types.generated.ts is what the schemas generate', () => {
    const file = fileURLToPath(new URL('../../schemas/types.generated.ts', import.meta.url));
    expect(readFileSync(file, 'utf8'), 'schemas/types.generated.ts is stale: run npm run schemas:generate').toBe(generateTypes(registry));
  });

  it('the generated types keep to the line width of the code (lint skips the generated file)', () => {
    const { printWidth } = JSON.parse(readFileSync(new URL('../../.prettierrc.json', import.meta.url), 'utf8')) as { printWidth: number };
    const overWidth = (text: string) => text.split('\n').filter((line) => line.length > printWidth);
    expect(overWidth(generateTypes(registry))).toEqual([]);
    // A union too wide for one line is written one member a line, every member kept.
    const symbols = Array.from({ length: 30 }, (_, i) => `COLOUR_${i}`);
    const colour = { type: 'enum', name: 'Colour', symbols };
    const wide = { type: 'record', name: 'Wide', namespace: 'castlog.test', fields: [{ name: 'colour', type: colour }] };
    const generated = generateTypes(new SchemaRegistry([parseSchema('Wide', 1, 'wide', wide)]));
    expect(overWidth(generated)).toEqual([]);
    expect(generated).toContain(['export type Colour =', ...symbols.map((s) => `  | "${s}"`)].join('\n') + ';');
  });
});

describe('the compatibility check', () => {
  const v1 = {
    type: 'record',
    name: 'Thing',
    namespace: 'castlog.test',
    fields: [
      { name: 'id', type: 'string' },
      { name: 'count', type: 'long' },
    ],
  };
  const versions = (...schemas: object[]) => schemas.map((s, i) => parseSchema('Thing', i + 1, `Thing.v${i + 1}.avsc`, s));
  const withFields = (...fields: object[]) => ({ ...v1, fields: [...v1.fields, ...fields] });

  it('passes a field added with a default, and one removed that had a default', () => {
    const v2 = withFields({ name: 'note', type: ['null', 'string'], default: null });
    expect(incompatibilities(versions(v1, v2, v1))).toEqual([]);
  });

  it('catches a field added without a default (old events cannot be read)', () => {
    const problems = incompatibilities(versions(v1, withFields({ name: 'note', type: 'string' })));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^Thing v2 cannot read v1/);
  });

  it('catches a field removed that had no default (new events cannot be read by old code)', () => {
    const v2 = { ...v1, fields: [v1.fields[0]] };
    const problems = incompatibilities(versions(v1, v2));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^Thing v1 cannot read v2/);
  });

  it('catches a type changed from long to string, in both directions', () => {
    const v2 = { ...v1, fields: [v1.fields[0], { name: 'count', type: 'string' }] };
    expect(incompatibilities(versions(v1, v2))).toHaveLength(2);
  });

  it('catches an enum symbol removed', () => {
    const e = (symbols: string[]) => withFields({ name: 'mode', type: { type: 'enum', name: 'Mode', symbols } });
    expect(incompatibilities(versions(e(['a', 'b']), e(['a'])))).toHaveLength(1);
  });

  it('catches a break between versions that are not neighbours', () => {
    const v2 = { ...v1, fields: [v1.fields[0], { name: 'count', type: 'long', default: 0 }] };
    const v3 = { ...v1, fields: [v1.fields[0]] };
    expect(incompatibilities(versions(v2, v3))).toEqual([]);
    expect(incompatibilities(versions(v1, v2, v3))).toEqual([expect.stringMatching(/^Thing v1 cannot read v3/)]);
  });
});
