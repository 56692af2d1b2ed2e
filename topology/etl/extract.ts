/**
 * extract: FileExtractSuccess → one RecordExtracted per record (keyed by permalink) and one
 * FileExtracted summary. The object is streamed from S3 and split as it arrives, never held
 * whole in memory; MongoDB extended JSON is normalised on the way.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PipelineError } from '../../core/errors.js';
import { JsonScanError, JsonScanner } from '../../core/json-stream.js';
import type { CompanyRecordEvent, FileExtracted, FileExtractSuccess } from '../../schemas/index.js';
import type { Emit, InputMessage, StageContext } from '../lib/types.js';
import { normalizeRecord } from './normalize.js';

/** Opens an object for streaming reads; injectable so unit tests need no S3. */
export type OpenObject = (bucket: string, key: string) => Promise<AsyncIterable<Uint8Array>>;

export function s3ObjectOpener(s3: S3Client): OpenObject {
  return async (bucket, key) => {
    try {
      const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      if (object.Body === undefined) throw new PipelineError('S3_EMPTY_BODY', `s3://${bucket}/${key} has no body`);
      return object.Body as AsyncIterable<Uint8Array>;
    } catch (error) {
      throw classifyS3Error(error, bucket, key);
    }
  };
}

/** A missing object can never be read (poison); anything else (network, 5xx) is retried. */
export function classifyS3Error(error: unknown, bucket: string, key: string): PipelineError {
  if (error instanceof PipelineError) return error;
  const name = (error as { name?: string }).name ?? '';
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchBucket' || status === 404) {
    return new PipelineError('S3_OBJECT_MISSING', `s3://${bucket}/${key} does not exist`, { cause: error });
  }
  if (name === 'AccessDenied' || status === 403) {
    return new PipelineError('S3_ACCESS_DENIED', `access to s3://${bucket}/${key} was denied`, { cause: error });
  }
  return new PipelineError('S3_UNAVAILABLE', `reading s3://${bucket}/${key} failed: ${(error as Error).message}`, {
    cause: error,
    retriable: true,
  });
}

/** The partition key of a record: its permalink, or a stable stand-in when it has none. */
export function recordKey(document: unknown, requestId: string, index: number): string {
  if (document !== null && typeof document === 'object' && !Array.isArray(document)) {
    const permalink = (document as Record<string, unknown>).permalink;
    if (typeof permalink === 'string' && permalink.trim() !== '') return permalink;
  }
  return `${requestId}#${index}`;
}

export function createExtract(openObject: OpenObject, options: { maxDepth?: number; maxLineBytes?: number } = {}) {
  return async function* extract(input: InputMessage<FileExtractSuccess>, context: StageContext): AsyncIterable<Emit> {
    const file = input.value;
    const pending: Buffer[] = [];
    const scanner = new JsonScanner({
      expect: file.format === 'ndjson' ? 'ndjson' : 'json',
      maxDepth: options.maxDepth,
      maxLineBytes: options.maxLineBytes,
      onRecord: (raw) => void pending.push(raw),
    });
    let index = 0;
    let bytes = 0;
    const body = await openObject(file.bucket, file.key);
    try {
      for await (const chunk of body) {
        bytes += chunk.length;
        scanner.write(chunk);
        for (const raw of pending) {
          const document = normalizeRecord(JSON.parse(raw.toString('utf8')));
          const value: CompanyRecordEvent = {
            request_id: file.request_id,
            tenant: file.tenant,
            bucket: file.bucket,
            key: file.key,
            record_index: index,
            document: JSON.stringify(document),
          };
          yield { to: 'records', key: recordKey(document, file.request_id, index), value, requestId: file.request_id };
          index++;
        }
        pending.length = 0;
      }
      scanner.end();
    } catch (error) {
      if (error instanceof JsonScanError) {
        throw new PipelineError('FILE_CORRUPT', `s3://${file.bucket}/${file.key} no longer parses: ${error.message}`, { cause: error });
      }
      throw classifyS3Error(error, file.bucket, file.key);
    }
    if (index !== file.record_count) {
      throw new PipelineError(
        'RECORD_COUNT_MISMATCH',
        `s3://${file.bucket}/${file.key} holds ${index} records, the ingress counted ${file.record_count}`,
      );
    }
    const summary: FileExtracted = {
      request_id: file.request_id,
      tenant: file.tenant,
      bucket: file.bucket,
      key: file.key,
      record_count: index,
      bytes,
      received_at: Number(file.received_at),
      extracted_at: Date.now(),
    };
    yield { to: 'summary', key: file.tenant, value: summary, requestId: file.request_id };
  };
}
