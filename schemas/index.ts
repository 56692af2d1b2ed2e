/**
 * The contracts between the pipeline's parts: the Avro schemas of the events (registered in
 * the Schema Registry under `<topic>-value`) and their TypeScript shapes.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { topics } from '../core/pipeline.js';

const avroDir = join(dirname(fileURLToPath(import.meta.url)), 'avro');

export interface AvroSchema {
  type: 'record';
  name: string;
  namespace: string;
  doc: string;
  fields: unknown[];
}

export function loadAvroSchema(name: string): AvroSchema {
  return JSON.parse(readFileSync(join(avroDir, `${name}.avsc`), 'utf8')) as AvroSchema;
}

/** Epoch milliseconds, UTC (Avro long with logicalType timestamp-millis). */
export type EpochMillis = number;

export interface FileExtractSuccess {
  request_id: string;
  tenant: string;
  bucket: string;
  key: string;
  etag: string;
  size: number;
  sha256: string;
  record_count: number;
  format: 'object' | 'array' | 'ndjson';
  content_type: string | null;
  original_filename: string | null;
  received_at: EpochMillis;
}

export interface FileExtractError {
  request_id: string;
  tenant: string;
  reason_code: string;
  message: string;
  offset: number | null;
  bytes_received: number;
  content_type: string | null;
  original_filename: string | null;
  received_at: EpochMillis;
}

export interface ValidationViolation {
  path: string;
  keyword: string;
  message: string;
}

export interface ValidationError {
  request_id: string;
  tenant: string;
  record_key: string | null;
  record_index: number;
  source_topic: string;
  source_partition: number;
  source_offset: number;
  violations: ValidationViolation[];
  detected_at: EpochMillis;
}

/** Which schema each event topic carries. */
export const eventSchemas = {
  [topics.fileExtractSuccess.name]: 'FileExtractSuccess',
  [topics.fileExtractError.name]: 'FileExtractError',
  [topics.validationError.name]: 'ValidationError',
} as const;

export type EventTopic = keyof typeof eventSchemas;
