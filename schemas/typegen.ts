// Turns the latest version of every event schema into TypeScript, so types come from the schemas.
import type { SchemaRegistry } from './registry.ts';

type Schema = string | Schema[] | { type: string | Schema; [k: string]: unknown };

/** The code's line width (Prettier's printWidth): the generated file keeps to it too. */
const WIDTH = 140;

/** A union of string literals, `export type name = "a" | "b";`, on one line when it fits, else one member a line. */
function unionType(name: string, values: string[]): string {
  const members = values.map((v) => JSON.stringify(v));
  const line = `export type ${name} = ${members.join(' | ')};`;
  return line.length <= WIDTH ? line : [`export type ${name} =`, ...members.map((m) => `  | ${m}`)].join('\n') + ';';
}

function tsType(schema: Schema, named: Map<string, string>, out: string[]): string {
  if (Array.isArray(schema)) return schema.map((s) => tsType(s, named, out)).join(' | ');
  if (typeof schema === 'string') {
    switch (schema) {
      case 'null':
        return 'null';
      case 'boolean':
        return 'boolean';
      case 'int':
      case 'long':
      case 'float':
      case 'double':
        return 'number';
      case 'bytes':
      case 'fixed':
        return 'Buffer';
      case 'string':
        return 'string';
      default: {
        const t = named.get(schema) ?? named.get(schema.split('.').pop()!);
        if (!t) throw new Error(`unknown named type ${schema}`);
        return t;
      }
    }
  }
  // Canonical form carries full names (castlog.captions.X); TypeScript gets the short one.
  const name = typeof schema.name === 'string' ? schema.name.split('.').pop() : undefined;
  switch (schema.type) {
    case 'record': {
      const fields = (schema.fields as { name: string; type: Schema; doc?: string }[]).map(
        (f) => `${f.doc ? `  /** ${f.doc} */\n` : ''}  ${f.name}: ${tsType(f.type, named, out)};`,
      );
      out.push(`export interface ${name} {\n${fields.join('\n')}\n}\n`);
      named.set(schema.name as string, name!);
      return name!;
    }
    case 'enum':
      out.push(`${unionType(name!, schema.symbols as string[])}\n`);
      named.set(schema.name as string, name!);
      return name!;
    case 'array':
      return `Array<${tsType(schema.items as Schema, named, out)}>`;
    case 'map':
      return `Record<string, ${tsType(schema.values as Schema, named, out)}>`;
    default:
      return tsType(schema.type as Schema, named, out);
  }
}

export function generateTypes(registry: SchemaRegistry): string {
  const out: string[] = [];
  const named = new Map<string, string>();
  const events = registry.events();
  for (const event of events) tsType(JSON.parse(registry.latest(event).canonical), named, out);
  return [
    '// Generated from schemas/avro by `npm run schemas:generate`; do not edit.',
    '',
    ...out,
    unionType('EventType', events),
    '',
    'export interface EventDataMap {',
    ...events.map((e) => `  ${e}: ${e};`),
    '}',
    '',
    "/** An event of any type. `type` tells them apart: a `switch (event.type)` narrows `data` to that event's. */",
    'export type AnyEvent =',
    ...events.map((e, i) => `  | { type: ${JSON.stringify(e)}; data: ${e} }${i === events.length - 1 ? ';' : ''}`),
    '',
    '/** The events of the given types only. */',
    'export type EventOf<T extends EventType> = { [K in T]: { type: K; data: EventDataMap[K] } }[T];',
    '',
  ].join('\n');
}
