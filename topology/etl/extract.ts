/**
 * extract: FilePiece → one RecordExtracted per record of the piece (keyed by permalink) and one
 * FileExtracted summary of the piece. The piece's byte range is streamed from S3 (a ranged GET)
 * and split as it arrives, never held whole in memory; MongoDB extended JSON is normalised on
 * the way. A range of an array's elements is read as the array of those elements.
 */
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PipelineError } from '../../core/errors.js';
import { JsonScanError, JsonScanner } from '../../core/json-stream.js';
import { fileKey } from '../../core/pipeline.js';
import type { CompanyRecordEvent, FileExtracted, FilePiece } from '../../schemas/index.js';
import type { Emit, InputMessage, StageContext } from '../lib/types.js';
import { normalizeRecord } from './normalize.js';

/** Bytes [start, end) of an object. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Opens an object (or a range of it) for streaming reads; injectable so unit tests need no S3. */
export type OpenObject = (bucket: string, key: string, range?: ByteRange) => Promise<AsyncIterable<Uint8Array>>;

export function s3ObjectOpener(s3: S3Client): OpenObject {
  return async (bucket, key, range) => {
    try {
      const object = await s3.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end - 1}` }) }),
      );
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

const OPEN_ARRAY = Buffer.from('[');
const CLOSE_ARRAY = Buffer.from(']');

export function createExtract(openObject: OpenObject, options: { maxDepth?: number; maxLineBytes?: number } = {}) {
  return async function* extract(input: InputMessage<FilePiece>, _context: StageContext): AsyncIterable<Emit> {
    const piece = input.value;
    const range = piece.byte_start === null || piece.byte_end === null ? undefined : { start: Number(piece.byte_start), end: Number(piece.byte_end) };
    const where = `s3://${piece.bucket}/${piece.key}${range === undefined ? '' : ` bytes [${range.start}, ${range.end})`}`;
    // The elements of an array, cut out of it, are read as an array of their own.
    const bracketed = range !== undefined && piece.format === 'array';
    const pending: Buffer[] = [];
    const scanner = new JsonScanner({
      expect: piece.format === 'ndjson' ? 'ndjson' : 'json',
      maxDepth: options.maxDepth,
      maxLineBytes: options.maxLineBytes,
      onRecord: (raw) => void pending.push(raw),
    });
    const first = Number(piece.record_start);
    const acceptedAt = Number(piece.accepted_at);
    let index = 0;
    let bytes = 0;
    const body = await openObject(piece.bucket, piece.key, range);
    try {
      if (bracketed) scanner.write(OPEN_ARRAY);
      for await (const chunk of body) {
        bytes += chunk.length;
        scanner.write(chunk);
        for (const raw of pending) {
          const document = normalizeRecord(JSON.parse(raw.toString('utf8')));
          const recordIndex = first + index;
          const value: CompanyRecordEvent = {
            request_id: piece.request_id,
            tenant: piece.tenant,
            bucket: piece.bucket,
            key: piece.key,
            record_index: recordIndex,
            document: JSON.stringify(document),
            accepted_at: acceptedAt,
          };
          yield { to: 'records', key: recordKey(document, piece.request_id, recordIndex), value, requestId: piece.request_id };
          index++;
        }
        pending.length = 0;
      }
      if (bracketed) scanner.write(CLOSE_ARRAY);
      scanner.end();
    } catch (error) {
      if (error instanceof JsonScanError) {
        throw new PipelineError('FILE_CORRUPT', `${where} no longer parses: ${error.message}`, { cause: error });
      }
      throw classifyS3Error(error, piece.bucket, piece.key);
    }
    if (range !== undefined && bytes !== range.end - range.start) {
      throw new PipelineError('FILE_CORRUPT', `${where}: S3 returned ${bytes} bytes, the ingress stored ${range.end - range.start} there`);
    }
    if (index !== Number(piece.record_count)) {
      throw new PipelineError('RECORD_COUNT_MISMATCH', `${where} holds ${index} records, the ingress counted ${piece.record_count}`);
    }
    const summary: FileExtracted = {
      request_id: piece.request_id,
      tenant: piece.tenant,
      bucket: piece.bucket,
      key: piece.key,
      record_count: index,
      bytes,
      received_at: Number(piece.received_at),
      extracted_at: Date.now(),
      piece_index: piece.piece_index,
      piece_count: piece.piece_count,
    };
    yield { to: 'summary', key: fileKey(piece.tenant, piece.request_id), value: summary, requestId: piece.request_id };
  };
}
