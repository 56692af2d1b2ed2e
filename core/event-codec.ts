/**
 * Avro events through the Schema Registry: each topic's value schema is registered under
 * `<topic>-value` with BACKWARD compatibility, and values are written in the Confluent
 * wire format (magic byte 0, 4-byte schema id, Avro binary). Once registered, encoding
 * uses the cached schema, so a registry outage does not stop already-known events.
 */
import { SchemaType, type SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { request } from 'undici';
import type { AvroSchema } from '../schemas/index.js';
import { PipelineError } from './errors.js';

export interface EventCodec {
  /** Registers (idempotently) the topic's schema; returns its registry id. */
  register(topic: string, schema: AvroSchema): Promise<number>;
  encode(topic: string, value: unknown): Promise<Buffer>;
  decode<T = unknown>(buffer: Buffer): Promise<T>;
  schemaId(topic: string): number | undefined;
  /** Cheap liveness probe of the registry, for /readiness. */
  ping(): Promise<void>;
}

export const avroContentType = 'application/vnd.etl.avro';

export function subjectOf(topic: string): string {
  return `${topic}-value`;
}

export function createEventCodec(registry: SchemaRegistry, registryUrl: string): EventCodec {
  const ids = new Map<string, number>();
  const base = registryUrl.replace(/\/+$/, '');

  async function setCompatibility(subject: string): Promise<void> {
    const response = await request(`${base}/config/${encodeURIComponent(subject)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ compatibility: 'BACKWARD' }),
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
    const text = await response.body.text();
    if (response.statusCode >= 300) {
      throw new PipelineError(
        'ERR_REGISTRY_CONFIG',
        `setting BACKWARD compatibility on ${subject} failed: ${response.statusCode} ${text}`,
        { retriable: response.statusCode >= 500 },
      );
    }
  }

  return {
    async register(topic, schema) {
      const subject = subjectOf(topic);
      try {
        await setCompatibility(subject);
        const { id } = await registry.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject });
        ids.set(topic, id);
        return id;
      } catch (error) {
        if (error instanceof PipelineError) throw error;
        throw new PipelineError('ERR_REGISTRY_REGISTER', `registering ${subject} failed: ${String(error)}`, {
          cause: error,
          retriable: true,
        });
      }
    },
    async encode(topic, value) {
      const id = ids.get(topic);
      if (id === undefined) {
        throw new PipelineError('ERR_SCHEMA_NOT_REGISTERED', `no schema registered for topic ${topic}`);
      }
      return registry.encode(id, value);
    },
    async decode<T>(buffer: Buffer) {
      return (await registry.decode(buffer)) as T;
    },
    schemaId(topic) {
      return ids.get(topic);
    },
    async ping() {
      const response = await request(`${base}/subjects`, { headersTimeout: 2000, bodyTimeout: 2000 });
      await response.body.dump();
      if (response.statusCode !== 200) throw new Error(`schema registry answered ${response.statusCode}`);
    },
  };
}
