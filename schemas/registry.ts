// Every Avro schema under schemas/avro, one file per event version (Name.vN.avsc).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';
import { fingerprintBytes } from './crc64avro.ts';

export interface SchemaVersion {
  event: string;
  version: number;
  file: string;
  type: avro.Type;
  /** Parsing Canonical Form, the text the fingerprint is taken over. */
  canonical: string;
  fingerprint: Buffer;
  fingerprintHex: string;
}

export const AVRO_DIR = fileURLToPath(new URL('./avro', import.meta.url));
const FILE_NAME = /^([A-Z][A-Za-z0-9]*)\.v([1-9][0-9]*)\.avsc$/;

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

export function parseSchema(event: string, version: number, file: string, schema: unknown): SchemaVersion {
  const type = avro.Type.forSchema(schema as avro.Schema);
  const canonical = JSON.stringify(type.schema());
  const fingerprint = fingerprintBytes(canonical);
  return { event, version, file, type, canonical, fingerprint, fingerprintHex: fingerprint.toString('hex') };
}

export class SchemaRegistry {
  private readonly versions = new Map<string, SchemaVersion[]>();
  private readonly fingerprints = new Map<string, SchemaVersion>();

  constructor(all: SchemaVersion[]) {
    for (const s of all) {
      const list = this.versions.get(s.event) ?? [];
      list.push(s);
      this.versions.set(s.event, list);
      this.fingerprints.set(s.fingerprintHex, s);
    }
    for (const list of this.versions.values()) list.sort((a, b) => a.version - b.version);
  }

  static load(dir = AVRO_DIR): SchemaRegistry {
    const files = walk(dir).filter((f) => f.endsWith('.avsc'));
    return new SchemaRegistry(
      files.map((file) => {
        const m = FILE_NAME.exec(file.split('/').pop()!);
        if (!m) throw new Error(`schema file ${file} must be named <Event>.v<N>.avsc`);
        return parseSchema(m[1]!, Number(m[2]), relative(dir, file), JSON.parse(readFileSync(file, 'utf8')));
      }),
    );
  }

  events(): string[] {
    return [...this.versions.keys()].sort();
  }

  history(event: string): SchemaVersion[] {
    const list = this.versions.get(event);
    if (!list) throw new Error(`unknown event type ${event}`);
    return list;
  }

  latest(event: string): SchemaVersion {
    return this.history(event).at(-1)!;
  }

  byFingerprint(hex: string): SchemaVersion | undefined {
    return this.fingerprints.get(hex);
  }

  all(): SchemaVersion[] {
    return [...this.fingerprints.values()];
  }
}
