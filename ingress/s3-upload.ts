/**
 * Streams a request body to S3 while it arrives, holding at most about two parts in memory.
 * A body smaller than one part becomes a single PutObject (one round trip, the common case
 * for small files); a larger one becomes a multipart upload with parts sent one at a time.
 * Metadata that is only known at the end (sha256, record count) is set with PutObject's
 * metadata, or for multipart by a server-side copy onto itself after completion.
 * Nothing is visible under the key until `finish` succeeds; `abort` leaves nothing behind.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { PipelineError } from '../core/errors.js';
import type { LeanS3Put } from './s3-put.js';

export interface StoredObject {
  etag: string;
  size: number;
}

export interface StreamingUploadOptions {
  s3: S3Client;
  bucket: string;
  key: string;
  contentType: string;
  partSizeBytes: number;
  /** Metadata known when the upload starts. */
  metadata: Record<string, string>;
  /** Called when buffered bytes fall back under the limit, so the caller can resume reading. */
  onDrain: () => void;
  /** Observer for S3 call latency metrics. */
  observe?: (operation: string, seconds: number, ok: boolean) => void;
  /** Lean signed PUT for bodies under one part (see s3-put.ts); the SDK's PutObject otherwise. */
  leanPut?: LeanS3Put;
}

export class StorageError extends PipelineError {
  constructor(message: string, cause: unknown) {
    super('S3_UNAVAILABLE', message, { cause, retriable: true });
  }
}

export class StreamingUpload {
  readonly #options: StreamingUploadOptions;
  #buffered: Buffer[] = [];
  #bufferedBytes = 0;
  #size = 0;
  #uploadId: Promise<string> | undefined;
  #parts: Array<{ PartNumber: number; ETag: string }> = [];
  #chain: Promise<void> = Promise.resolve();
  #inFlightBytes = 0;
  #failure: unknown;
  #aborted = false;
  #paused = false;

  constructor(options: StreamingUploadOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#size;
  }

  /** True while the caller should stop feeding (about two parts are held). */
  get saturated(): boolean {
    return this.#bufferedBytes + this.#inFlightBytes >= 2 * this.#options.partSizeBytes;
  }

  /** Takes a chunk the caller no longer owns (copy it first if it may be reused). Returns false when saturated. */
  write(chunk: Buffer): boolean {
    if (this.#failure !== undefined) throw this.#storageError('upload failed', this.#failure);
    if (this.#aborted) return true;
    this.#buffered.push(chunk);
    this.#bufferedBytes += chunk.length;
    this.#size += chunk.length;
    if (this.#bufferedBytes >= this.#options.partSizeBytes) this.#flushPart();
    const saturated = this.saturated;
    if (saturated) this.#paused = true;
    return !saturated;
  }

  async finish(finalMetadata: Record<string, string>): Promise<StoredObject> {
    const { s3, bucket, key, contentType, metadata } = this.#options;
    const allMetadata = { ...metadata, ...finalMetadata };
    if (this.#uploadId === undefined) {
      const body = Buffer.concat(this.#buffered, this.#bufferedBytes);
      this.#buffered = [];
      this.#bufferedBytes = 0;
      const { leanPut } = this.#options;
      const sha256 = finalMetadata.sha256;
      if (leanPut !== undefined && sha256 !== undefined) {
        const put = await this.#call('PutObject', () => leanPut.put({ key, body, contentType, metadata: allMetadata, sha256 }));
        return { etag: put.etag, size: this.#size };
      }
      const put = await this.#call('PutObject', () =>
        s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: key,
            Body: body,
            ContentLength: body.length,
            ContentType: contentType,
            Metadata: allMetadata,
          }),
        ),
      );
      return { etag: stripQuotes(put.ETag), size: this.#size };
    }
    if (this.#bufferedBytes > 0 || this.#parts.length === 0) this.#flushPart();
    await this.#chain;
    if (this.#failure !== undefined) throw this.#storageError('uploading a part failed', this.#failure);
    const uploadId = await this.#uploadId;
    await this.#call('CompleteMultipartUpload', () =>
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: this.#parts },
        }),
      ),
    );
    try {
      const copy = await this.#call('CopyObject', () =>
        s3.send(
          new CopyObjectCommand({
            Bucket: bucket,
            Key: key,
            CopySource: `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`,
            MetadataDirective: 'REPLACE',
            ContentType: contentType,
            Metadata: allMetadata,
          }),
        ),
      );
      return { etag: stripQuotes(copy.CopyObjectResult?.ETag), size: this.#size };
    } catch (error) {
      // The object exists but lacks its final metadata: do not leave it for a retry to trip on.
      await this.deleteStored().catch(() => undefined);
      throw error;
    }
  }

  /** Drops everything: parts already sent are aborted server-side. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#buffered = [];
    this.#bufferedBytes = 0;
    if (this.#uploadId === undefined) return;
    await this.#chain.catch(() => undefined);
    const uploadId = await this.#uploadId.catch(() => undefined);
    if (uploadId === undefined) return;
    const { s3, bucket, key } = this.#options;
    await this.#call('AbortMultipartUpload', () => s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId })));
  }

  /** Deletes the completed object (used when its event could not be produced). */
  async deleteStored(): Promise<void> {
    const { s3, bucket, key } = this.#options;
    await this.#call('DeleteObject', () => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })));
  }

  #flushPart(): void {
    const { s3, bucket, key, contentType, metadata } = this.#options;
    const body = Buffer.concat(this.#buffered, this.#bufferedBytes);
    this.#buffered = [];
    this.#bufferedBytes = 0;
    this.#inFlightBytes += body.length;
    this.#uploadId ??= this.#call('CreateMultipartUpload', () =>
      s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: contentType, Metadata: metadata })),
    ).then((created) => {
      if (created.UploadId === undefined) throw new Error('CreateMultipartUpload returned no UploadId');
      return created.UploadId;
    });
    const uploadId = this.#uploadId;
    const partNumber = this.#parts.length + 1 + this.#pendingParts++;
    this.#chain = this.#chain.then(async () => {
      if (this.#failure !== undefined || this.#aborted) return;
      try {
        const id = await uploadId;
        const part = await this.#call('UploadPart', () =>
          s3.send(
            new UploadPartCommand({
              Bucket: bucket,
              Key: key,
              UploadId: id,
              PartNumber: partNumber,
              Body: body,
              ContentLength: body.length,
            }),
          ),
        );
        this.#parts.push({ PartNumber: partNumber, ETag: part.ETag ?? '' });
      } catch (error) {
        this.#failure = error;
      } finally {
        this.#pendingParts--;
        this.#inFlightBytes -= body.length;
        if (this.#paused && !this.saturated) {
          this.#paused = false;
          this.#options.onDrain();
        }
      }
    });
  }

  #pendingParts = 0;

  async #call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    try {
      const result = await run();
      this.#options.observe?.(operation, Number(process.hrtime.bigint() - started) / 1e9, true);
      return result;
    } catch (error) {
      this.#options.observe?.(operation, Number(process.hrtime.bigint() - started) / 1e9, false);
      throw this.#storageError(`${operation} failed`, error);
    }
  }

  #storageError(message: string, cause: unknown): StorageError {
    if (cause instanceof StorageError) return cause;
    return new StorageError(`${message}: ${cause instanceof Error ? cause.message : String(cause)}`, cause);
  }
}

function stripQuotes(etag: string | undefined): string {
  return (etag ?? '').replaceAll('"', '');
}

/**
 * Aborts multipart uploads under `bucket` begun before `olderThan` (epoch ms): what an ingress
 * killed mid-upload leaves behind (parts that are stored but invisible and never completed).
 * Returns the keys it aborted. Uploads of live replicas are younger than the cut-off.
 */
export async function abortStaleUploads(s3: S3Client, bucket: string, olderThan: number): Promise<string[]> {
  const aborted: string[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (;;) {
    const page = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
    for (const upload of page.Uploads ?? []) {
      if (upload.Key === undefined || upload.UploadId === undefined) continue;
      if ((upload.Initiated?.getTime() ?? 0) >= olderThan) continue;
      await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
      aborted.push(upload.Key);
    }
    if (page.IsTruncated !== true) return aborted;
    keyMarker = page.NextKeyMarker;
    uploadIdMarker = page.NextUploadIdMarker;
  }
}
