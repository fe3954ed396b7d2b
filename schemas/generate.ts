import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SchemaRegistry } from './registry.ts';
import { generateTypes } from './typegen.ts';

export const GENERATED = fileURLToPath(new URL('./types.generated.ts', import.meta.url));
writeFileSync(GENERATED, generateTypes(SchemaRegistry.load()));
console.log(`wrote ${GENERATED}`);
