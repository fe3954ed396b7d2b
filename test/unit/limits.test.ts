// Every string field of every event has a maximum length, and the codec holds every event to it.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AvroCodec, CodecError } from '../../schemas/codec.ts';
import { STRING_LIMITS, overLimit } from '../../schemas/limits.ts';
import type { EventType } from '../../schemas/types.generated.ts';

const ROOT = new URL('../../schemas/avro/', import.meta.url);

/** Paths of the string fields of an Avro schema ("options.preset", "active[]"). */
function stringPaths(type: unknown, path = ''): string[] {
  if (type === 'string') return [path];
  if (Array.isArray(type)) return type.flatMap((t) => stringPaths(t, path));
  if (typeof type !== 'object' || type === null) return [];
  const t = type as { type: unknown; fields?: { name: string; type: unknown }[]; items?: unknown; values?: unknown };
  if (t.type === 'record') return t.fields!.flatMap((f) => stringPaths(f.type, path ? `${path}.${f.name}` : f.name));
  if (t.type === 'array') return stringPaths(t.items, `${path}[]`);
  if (t.type === 'map') return stringPaths(t.values, `${path}{}`);
  return stringPaths(t.type, path);
}

const schemas = readdirSync(ROOT).flatMap((topic) =>
  readdirSync(new URL(`${topic}/`, ROOT)).map((file) => ({
    file,
    schema: JSON.parse(readFileSync(new URL(`${topic}/${file}`, ROOT), 'utf8')) as { name: string },
  })),
);

describe('string limits', () => {
  it.each(schemas)('every string field of $file has a limit', ({ schema }) => {
    const limits = STRING_LIMITS[schema.name as EventType];
    expect(limits, `${schema.name} is missing from STRING_LIMITS`).toBeDefined();
    for (const path of stringPaths(schema)) expect(limits[path], `${schema.name}.${path}`).toBeGreaterThan(0);
  });

  it('the codec refuses to encode a string past its limit, and encodes one at it', () => {
    const codec = new AvroCodec();
    const fragment = { channel: 'bbc1', station: 's', seq: 1, text: 'hi', start: 0, end: 1, mode: null, receivedAt: 0 };
    expect(() => codec.encode('CaptionFragmentReceived', { ...fragment, lang: 'x'.repeat(35) })).not.toThrow();
    expect(() => codec.encode('CaptionFragmentReceived', { ...fragment, lang: 'x'.repeat(36) })).toThrow(CodecError);
    expect(() => codec.encode('CaptionFragmentReceived', { ...fragment, lang: null, text: 'x'.repeat(4001) })).toThrow(
      /text: longer than 4000/,
    );
    const rejected = { userId: 'u'.repeat(36), streamId: 's'.repeat(36), limit: 3, at: 0 };
    expect(() => codec.encode('ActivationRejected', { ...rejected, active: ['a'.repeat(36)] })).not.toThrow();
    expect(() => codec.encode('ActivationRejected', { ...rejected, active: ['a'.repeat(37)] })).toThrow(/active: longer than 36/);
  });

  /** `data` with `value` at `path` ("options.preset", "active[]"), an array element where it says []. */
  const at = (path: string, value: string): unknown =>
    path
      .split('.')
      .reverse()
      .reduce<unknown>((inner, part) => (part.endsWith('[]') ? { [part.slice(0, -2)]: ['ok', inner] } : { [part]: inner }), value);

  it.each(Object.entries(STRING_LIMITS).flatMap(([type, fields]) => Object.entries(fields).map(([path, max]) => ({ type, path, max }))))(
    '$type.$path: $max characters pass, one more is named',
    ({ type, path, max }) => {
      expect(overLimit(type as EventType, at(path, 'x'.repeat(max)))).toBeUndefined();
      expect(overLimit(type as EventType, at(path, 'x'.repeat(max + 1)))).toBe(`${path.replace('[]', '')}: longer than ${max} characters`);
      // A field missing, or no object at all, is the schema's to refuse.
      expect(overLimit(type as EventType, { other: 'x'.repeat(max + 1) })).toBeUndefined();
      expect(overLimit(type as EventType, null)).toBeUndefined();
    },
  );
});
