/**
 * The contracts between the pipeline's parts: the Avro schemas of the events (registered in
 * the Schema Registry under `<topic>-value`) and their TypeScript shapes.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
  /** Null (or absent) in events written before the field existed: received_at stands in. */
  accepted_at?: EpochMillis | null;
  /** Empty (or absent): the file is one piece. */
  pieces?: FilePieceRange[];
  /** A replay's original import (same tenant); null (or absent) for a file a client sent. */
  replay_of?: string | null;
}

/** A record-aligned byte range of a file: [byte_start, byte_end) holds records record_start … + record_count. */
export interface FilePieceRange {
  byte_start: number;
  byte_end: number;
  record_start: number;
  record_count: number;
}

/** One piece of an accepted file, extracted on its own; byte_start/byte_end null: the whole object. */
export interface FilePiece {
  request_id: string;
  tenant: string;
  bucket: string;
  key: string;
  format: 'object' | 'array' | 'ndjson';
  received_at: EpochMillis;
  accepted_at: EpochMillis;
  piece_index: number;
  piece_count: number;
  byte_start: number | null;
  byte_end: number | null;
  record_start: number;
  record_count: number;
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

export interface CompanyRecordEvent {
  request_id: string;
  tenant: string;
  bucket: string;
  key: string;
  record_index: number;
  /** The normalised record as JSON text. */
  document: string;
  /** When the ingress accepted the file; null in events written before the field existed. */
  accepted_at?: EpochMillis | null;
}

export interface FileExtracted {
  request_id: string;
  tenant: string;
  bucket: string;
  key: string;
  record_count: number;
  bytes: number;
  received_at: EpochMillis;
  extracted_at: EpochMillis;
  /** Absent in events written before pieces existed: 0 of 1. */
  piece_index?: number;
  piece_count?: number;
}

export interface RecordsLoaded {
  request_id: string;
  tenant: string;
  batch_id: string;
  inserted: number;
  updated: number;
  rejected: number;
  loaded_at: EpochMillis;
  /** Absent in events written before the field (schema version 1): read as 0. */
  unchanged?: number;
}

export interface ProcessingError {
  stage: string;
  request_id: string;
  tenant: string;
  reason_code: string;
  message: string;
  record_key: string | null;
  record_index: number | null;
  source_topic: string;
  source_partition: number;
  source_offset: number;
  failed_at: EpochMillis;
}

/**
 * Which schema (schemas/avro/<name>.avsc) each topic carries, by topic name. The contracts import
 * nothing of the code; schemas.test.ts checks these names are core/pipeline.ts's topics.
 */
export const eventSchemas = {
  FileExtractSuccess: 'FileExtractSuccess',
  FileExtractError: 'FileExtractError',
  FilePiece: 'FilePiece',
  ValidationError: 'ValidationError',
  RecordExtracted: 'CompanyRecord',
  FileExtracted: 'FileExtracted',
  RecordValidated: 'CompanyRecord',
  RecordsLoaded: 'RecordsLoaded',
  ProcessingError: 'ProcessingError',
} as const;

export function schemaOfTopic(topic: string): AvroSchema {
  const name = (eventSchemas as Record<string, string>)[topic];
  if (name === undefined) throw new Error(`no Avro schema is declared for topic ${topic}`);
  return loadAvroSchema(name);
}

export type EventTopic = keyof typeof eventSchemas;
