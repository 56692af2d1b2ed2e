/**
 * An EventCodec without a registry, for tests: values travel as JSON behind the Confluent
 * wire format's header (magic byte 0, then a 4-byte schema id, one per topic), so a value
 * that lacks the header, names an unknown id or is not JSON fails to decode, as an
 * undecodable Avro message does with the real codec.
 */
import type { EventCodec } from '../../../core/event-codec.js';
import { PipelineError } from '../../../core/errors.js';

const magicByte = 0;
const headerBytes = 5;

export interface MemoryCodec extends EventCodec {
  /** `encode`, without the promise: for a test's input records. */
  encodeSync(topic: string, value: unknown): Buffer;
  /** `decode`, without the promise: for reading what a stage wrote. */
  decodeSync<T = unknown>(buffer: Buffer): T;
}

export interface MemoryCodecOptions {
  /**
   * Refuse to encode for a topic whose schema was never registered (ERR_SCHEMA_NOT_REGISTERED,
   * like the real codec); by default a topic is registered on its first encode.
   */
  strict?: boolean;
}

export function createMemoryCodec(options: MemoryCodecOptions = {}): MemoryCodec {
  const { strict = false } = options;
  const ids = new Map<string, number>();
  const topicsById = new Map<number, string>();

  function register(topic: string): number {
    let id = ids.get(topic);
    if (id === undefined) {
      id = ids.size + 1;
      ids.set(topic, id);
      topicsById.set(id, topic);
    }
    return id;
  }

  function encodeSync(topic: string, value: unknown): Buffer {
    let id = ids.get(topic);
    if (id === undefined) {
      if (strict) throw new PipelineError('ERR_SCHEMA_NOT_REGISTERED', `no schema registered for topic ${topic}`);
      id = register(topic);
    }
    const json = JSON.stringify(value);
    // Like avsc refusing a value its schema does not describe.
    if (json === undefined) throw new TypeError(`cannot encode ${String(value)} for topic ${topic}`);
    const header = Buffer.alloc(headerBytes);
    header.writeUInt8(magicByte, 0);
    header.writeUInt32BE(id, 1);
    return Buffer.concat([header, Buffer.from(json, 'utf8')]);
  }

  function decodeSync<T>(buffer: Buffer): T {
    if (buffer.length < headerBytes || buffer.readUInt8(0) !== magicByte) {
      throw new Error(`Message encoded with magic byte ${buffer.length === 0 ? 'none' : buffer.readUInt8(0)}, expected ${magicByte}`);
    }
    const id = buffer.readUInt32BE(1);
    if (!topicsById.has(id)) throw new Error(`no schema with id ${id}`);
    return JSON.parse(buffer.subarray(headerBytes).toString('utf8')) as T;
  }

  return {
    async register(topic) {
      return register(topic);
    },
    async encode(topic, value) {
      return encodeSync(topic, value);
    },
    async decode<T>(buffer: Buffer) {
      return decodeSync<T>(buffer);
    },
    schemaId: (topic) => ids.get(topic),
    async ping() {},
    encodeSync,
    decodeSync,
  };
}
