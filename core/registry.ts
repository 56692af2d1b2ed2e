import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { RegistryConfig } from './config.js';

/** A client of any Confluent-compatible Schema Registry API (here Apicurio's /apis/ccompat/v7). */
export function createRegistry(config: RegistryConfig): SchemaRegistry {
  return new SchemaRegistry({ host: config.url, retry: { retries: 3, initialRetryTimeInSecs: 0.2, maxRetryTimeInSecs: 2 } });
}
