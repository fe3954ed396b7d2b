// Avro single-object encoding: 0xC3 0x01, the writer schema's CRC-64-AVRO fingerprint, then the body.
// Any consumer can find the writer schema from the bytes alone; we read older versions through
// avsc's resolver into the latest version of the same event.
import type avro from 'avsc';
import { overLimit } from './limits.ts';
import { SchemaRegistry, type SchemaVersion } from './registry.ts';
import type { EventDataMap, EventOf, EventType } from './types.generated.ts';

const MAGIC = Buffer.from([0xc3, 0x01]);
const HEADER = MAGIC.length + 8;
/** Events are written here first, then copied out at their size: one allocation per event. */
const SCRATCH_BYTES = 64 * 1024;

export class CodecError extends Error {}

/** A decoded event: one of the schemas' events (narrowed by `type`), with its writer's schema version. */
export type Decoded<T extends EventType = EventType> = EventOf<T> & {
  /** The writer's schema version. */
  version: number;
};

export class AvroCodec {
  private readonly resolvers = new Map<string, avro.Resolver>();
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_BYTES);

  constructor(readonly registry: SchemaRegistry = SchemaRegistry.load()) {}

  /** The event's bytes; CodecError when a string field is longer than schemas/limits.ts allows. */
  encode<T extends EventType>(type: T, data: EventDataMap[T]): Buffer {
    const problem = overLimit(type, data);
    if (problem) throw new CodecError(`${type}: ${problem}`);
    const schema = this.registry.latest(type);
    const end = schema.type.encode(data, this.scratch, HEADER);
    // Negative: it did not fit (only an event near the limits' sum); avsc sizes it then.
    if (end < 0) return Buffer.concat([MAGIC, schema.fingerprint, schema.type.toBuffer(data)]);
    const bytes = Buffer.allocUnsafe(end);
    MAGIC.copy(bytes, 0);
    schema.fingerprint.copy(bytes, MAGIC.length);
    this.scratch.copy(bytes, HEADER, HEADER, end);
    return bytes;
  }

  writerOf(bytes: Buffer): SchemaVersion {
    if (bytes.length < HEADER || bytes[0] !== MAGIC[0] || bytes[1] !== MAGIC[1]) {
      throw new CodecError('not Avro single-object encoding (missing 0xC3 0x01 marker)');
    }
    const hex = bytes.subarray(2, HEADER).toString('hex');
    const writer = this.registry.byFingerprint(hex);
    if (!writer) throw new CodecError(`unknown schema fingerprint ${hex}`);
    return writer;
  }

  decode(bytes: Buffer): Decoded {
    const writer = this.writerOf(bytes);
    const reader = this.registry.latest(writer.event);
    const body = bytes.subarray(HEADER);
    let data: unknown;
    try {
      data = reader === writer ? reader.type.fromBuffer(body) : reader.type.fromBuffer(body, this.resolver(reader, writer));
    } catch (err) {
      // A damaged body is the same kind of problem as an unknown schema: one error type for callers.
      throw new CodecError(`${writer.event} v${writer.version}: ${(err as Error).message}`);
    }
    // The one place bytes become a typed event: the writer's schema named the type, avsc checked the data.
    return { type: writer.event, version: writer.version, data } as Decoded;
  }

  private resolver(reader: SchemaVersion, writer: SchemaVersion): avro.Resolver {
    const key = `${reader.fingerprintHex}<${writer.fingerprintHex}`;
    let r = this.resolvers.get(key);
    if (!r) this.resolvers.set(key, (r = reader.type.createResolver(writer.type)));
    return r;
  }
}
