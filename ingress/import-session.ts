/**
 * One POST /import/:tenant, in three stages over a small response interface, so that it runs
 * the same under uWS and under a unit test's fake response:
 *   admission  tenant, auth, headers, limits, dedupe and the durable claim;
 *   stream     body chunks into the JSON scanner, the hash and the S3 upload (backpressure, abort);
 *   finish     store the file, emit FileExtractSuccess, answer 202.
 * Every failure goes through `fail` (status + code + message); `close` is the one clean-up path
 * and runs exactly once per admitted import.
 */
import { createHash, type Hash } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Logger } from 'pino';
import { avroContentType, type EventCodec } from '../core/event-codec.js';
import { errorMessage } from '../core/errors.js';
import { statusText } from '../core/http.js';
import { JsonScanError, JsonScanner, type ExpectedFormat, type ScanResult } from '../core/json-stream.js';
import { fileKey, rawObjectKey, topics } from '../core/pipeline.js';
import { PiecePlanner } from '../core/file-pieces.js';
import { isValidRequestId, isValidTenant, uuidv7 } from '../core/request-id.js';
import type { FileExtractError, FileExtractSuccess } from '../schemas/index.js';
import type { S3Client } from '@aws-sdk/client-s3';
import type { TenantTokens } from '../core/tenant-tokens.js';
import type { IngressConfig } from './config.js';
import type { RequestDeduplicator } from './dedupe.js';
import type { ClaimOutcome, ImportClaims } from './import-claims.js';
import type { IngressMetrics } from './metrics.js';
import type { LeanS3Put } from './s3-put.js';
import { StreamingUpload } from './s3-upload.js';

export interface ImportAccepted {
  request_id: string;
  tenant: string;
  bucket: string;
  key: string;
  etag: string;
  size: number;
  records: number;
  format: string;
  sha256: string;
  status_url: string;
}

/** What an import talks to; unit tests pass in-memory fakes. */
export interface ImportSessionDeps {
  config: IngressConfig;
  s3: S3Client;
  /** Signed PUT without the SDK for small files (cheaper in CPU than the SDK's PutObject: bench:ingest). */
  leanPut?: LeanS3Put;
  codec: EventCodec;
  /** Sends one event and resolves once the brokers acknowledged it (acks=all). */
  sendEvent: (topic: string, message: { key: string; value: Buffer; headers: Record<string, string> }) => Promise<void>;
  dedupe: RequestDeduplicator<ImportAccepted>;
  /** Durable claims on request ids, across replicas and restarts; undefined: this process only. */
  claims?: ImportClaims<ImportAccepted>;
  tokens: TenantTokens;
  metrics: IngressMetrics;
  logger: Logger;
  /** Counts imports in flight, so shutdown can wait for them. */
  inFlight: { count: number; changed: () => void };
}

/** The few uWS HttpResponse methods an import uses; uWS's HttpResponse satisfies it. */
export interface ImportResponse {
  writeStatus(status: string): unknown;
  writeHeader(name: string, value: string): unknown;
  /** closeConnection: the body was not (fully) read, so its rest must not be taken for the next request. */
  end(body: string, closeConnection?: boolean): unknown;
  cork(callback: () => void): unknown;
  onData(handler: (chunk: ArrayBuffer, isLast: boolean) => void): unknown;
  onAborted(handler: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

/** What the route reads from the request before its handler returns (uWS invalidates `req` then). */
export interface ImportRequestHead {
  tenant: string;
  requestId: string | undefined;
  contentType: string | undefined;
  contentLength: string | undefined;
  authorization: string | undefined;
  filename: string | null;
}

export interface ImportFailure {
  status: number;
  code: string;
  message: string;
  extra?: Record<string, unknown>;
}

type DurableClaim = ClaimOutcome<ImportAccepted> | { kind: 'off' } | { kind: 'error'; error: unknown };

/** How an admitted import ended: only `accepted` and `duplicate` keep the request id claimed. */
type Outcome = 'accepted' | 'duplicate' | 'failed';

const route = '/import/:tenant';

/** `application/json` → one object or array; NDJSON types → lines; none → detect. */
function expectedFormat(contentType: string | undefined): ExpectedFormat | 'unsupported' {
  if (contentType === undefined) return 'detect';
  const [mediaType = '', ...params] = contentType.split(';').map((part) => part.trim().toLowerCase());
  const charset = params
    .find((param) => param.startsWith('charset='))
    ?.slice('charset='.length)
    .replaceAll('"', '');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') return 'unsupported';
  if (mediaType === 'application/json') return 'json';
  if (mediaType === 'application/x-ndjson' || mediaType === 'application/ndjson' || mediaType === 'application/jsonl') {
    return 'ndjson';
  }
  return 'unsupported';
}

/** Sends JSON answers on an ImportResponse under uWS's rules: once, corked, never after an abort. */
class Answerer {
  aborted = false;
  done = false;
  /** Set by the session once admitted: what a client abort means depends on its stage. */
  onAbort: (() => void) | undefined;

  constructor(
    readonly res: ImportResponse,
    readonly deps: ImportSessionDeps,
    readonly requestId: string,
    readonly started: bigint,
  ) {}

  answer(status: number, body: unknown, close = false): void {
    if (this.aborted || this.done) return;
    this.done = true;
    const headers: Record<string, string> = { 'x-request-id': this.requestId };
    if (status === 503 || status === 429) headers['retry-after'] = '1';
    const payload = JSON.stringify(body);
    this.res.cork(() => {
      this.res.writeStatus(statusText[status] ?? `${status} ${STATUS_CODES[status] ?? 'Unknown'}`);
      this.res.writeHeader('content-type', 'application/json');
      for (const [name, value] of Object.entries(headers)) this.res.writeHeader(name, value);
      this.res.end(payload, close);
    });
    this.deps.metrics.requests.inc({ route, status: String(status) });
    this.deps.metrics.requestSeconds.observe({ route }, Number(process.hrtime.bigint() - this.started) / 1e9);
  }

  refuse(failure: ImportFailure): void {
    const { status, code, message, extra = {} } = failure;
    this.answer(status, { error: { code, message, request_id: this.requestId, ...extra } }, true);
  }
}

/**
 * Admission: answers refusals at once and returns undefined, or returns the session that
 * streams the body. The caller must not touch `res` afterwards.
 */
export function startImportSession(
  deps: ImportSessionDeps,
  res: ImportResponse,
  head: ImportRequestHead,
  started = process.hrtime.bigint(),
): ImportSession | undefined {
  const validIncomingId = head.requestId !== undefined && isValidRequestId(head.requestId);
  const requestId = validIncomingId && head.requestId !== undefined ? head.requestId : uuidv7();
  const answerer = new Answerer(res, deps, requestId, started);
  res.onAborted(() => {
    answerer.aborted = true;
    answerer.onAbort?.();
  });

  const expect = admission(deps, head, validIncomingId);
  if (typeof expect !== 'string') {
    answerer.refuse(expect);
    return undefined;
  }
  const known = deps.dedupe.claim(head.tenant, requestId);
  if (known?.state === 'done') {
    deps.metrics.dedupeHits.inc();
    answerer.answer(202, { ...known.result, duplicate: true }, true);
    return undefined;
  }
  if (known?.state === 'in-flight') {
    answerer.refuse({ status: 409, code: 'IMPORT_IN_PROGRESS', message: 'an import with this X-Request-Id is still running' });
    return undefined;
  }
  return new ImportSession(deps, answerer, head, expect);
}

/** The body's expected format when the headers and limits admit the import, else why not. */
function admission(deps: ImportSessionDeps, head: ImportRequestHead, validIncomingId: boolean): ExpectedFormat | ImportFailure {
  const limits = deps.config.ingress;
  if (head.requestId !== undefined && !validIncomingId) {
    return { status: 400, code: 'INVALID_REQUEST_ID', message: 'X-Request-Id must be 8-128 characters of A-Z, a-z, 0-9, - and _' };
  }
  if (!isValidTenant(head.tenant)) {
    return { status: 400, code: 'INVALID_TENANT', message: 'tenant must match [a-z0-9][a-z0-9._-]{0,62} (no "..")' };
  }
  if (!deps.tokens.allows(head.tenant, head.authorization)) {
    return { status: 401, code: 'UNAUTHORIZED', message: 'a valid "Authorization: Bearer <token>" for this tenant is required' };
  }
  const expect = expectedFormat(head.contentType);
  if (expect === 'unsupported') {
    return {
      status: 415,
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message: 'Content-Type must be application/json or application/x-ndjson (UTF-8), or absent',
    };
  }
  if (head.contentLength !== undefined && Number(head.contentLength) > limits.maxBodyBytes) {
    return tooLarge(limits.maxBodyBytes);
  }
  if (deps.inFlight.count >= limits.maxConcurrentUploads) {
    return { status: 503, code: 'TOO_MANY_UPLOADS', message: 'the ingress is at its concurrent upload limit; retry shortly' };
  }
  return expect;
}

function tooLarge(maxBodyBytes: number): ImportFailure {
  return { status: 413, code: 'BODY_TOO_LARGE', message: `the body exceeds ${maxBodyBytes} bytes`, extra: { limit_bytes: maxBodyBytes } };
}

export class ImportSession {
  readonly #deps: ImportSessionDeps;
  readonly #answerer: Answerer;
  readonly #head: ImportRequestHead;
  readonly #log: Logger;
  readonly #receivedAt = Date.now();
  readonly #key: string;
  readonly #durable: Promise<DurableClaim>;
  readonly #pieces: PiecePlanner;
  readonly #scanner: JsonScanner;
  readonly #hash: Hash = createHash('sha256');
  readonly #upload: StreamingUpload;
  readonly #rateTimer: NodeJS.Timeout | undefined;
  #received = 0;
  #closed = false;
  #onClosed: () => void = () => undefined;
  /** Settles once the session has ended and run its clean-up, whatever the outcome. */
  readonly closed = new Promise<void>((resolve) => (this.#onClosed = resolve));
  /** The whole body is in: from here on the wait is ours (S3, Kafka), not the client's. */
  #bodyComplete = false;
  /** The upload reached S3 (finish resolved): nothing is left to abort. */
  #stored = false;
  #pausedByUs = false;
  #receivedAtWindowStart = 0;
  #windowHeldBack = false;

  constructor(deps: ImportSessionDeps, answerer: Answerer, head: ImportRequestHead, expect: ExpectedFormat) {
    const { config, metrics } = deps;
    const limits = config.ingress;
    const { tenant } = head;
    const requestId = answerer.requestId;
    this.#deps = deps;
    this.#answerer = answerer;
    this.#head = head;
    this.#log = deps.logger.child({ request_id: requestId, tenant });
    // Claimed while the body streams in; awaited before the file is stored (#finish).
    this.#durable =
      deps.claims === undefined
        ? Promise.resolve({ kind: 'off' })
        : deps.claims.claim(tenant, requestId).catch((error: unknown) => ({ kind: 'error', error }) as const);
    this.#key = rawObjectKey(tenant, requestId, this.#receivedAt);
    this.#pieces = new PiecePlanner(limits.pieceBytes);
    const pieces = this.#pieces;
    this.#scanner = new JsonScanner({
      expect,
      maxDepth: limits.maxDepth,
      maxLineBytes: limits.maxLineBytes,
      onRecordBounds: (index, start, end) => pieces.record(index, start, end),
    });
    this.#upload = new StreamingUpload({
      s3: deps.s3,
      bucket: config.s3.bucket,
      key: this.#key,
      contentType: expect === 'ndjson' ? 'application/x-ndjson' : 'application/json',
      partSizeBytes: limits.partSizeBytes,
      metadata: {
        'request-id': requestId,
        tenant,
        ...(head.filename === null ? {} : { 'original-filename': encodeURIComponent(head.filename) }),
      },
      onDrain: () => {
        this.#pausedByUs = false;
        if (!answerer.aborted && !answerer.done) answerer.res.resume();
      },
      observe: (operation, seconds, ok) => metrics.s3Seconds.observe({ operation, result: ok ? 'ok' : 'error' }, seconds),
      leanPut: deps.leanPut,
    });
    deps.inFlight.count++;
    metrics.uploadsInFlight.inc();
    answerer.onAbort = () => this.clientAborted();

    // Slow-body guard: each window must bring at least the minimum rate's bytes, except while
    // the ingress itself holds the body back (S3 backpressure pauses the socket).
    const minBytesPerWindow = Math.ceil((limits.bodyMinBytesPerSecond * limits.bodyRateWindowMs) / 1000);
    this.#rateTimer = minBytesPerWindow === 0 ? undefined : setInterval(() => this.#checkRate(minBytesPerWindow), limits.bodyRateWindowMs);
    this.#rateTimer?.unref();
    answerer.res.onData((chunk, isLast) => this.#onData(chunk, isLast));
  }

  get requestId(): string {
    return this.#answerer.requestId;
  }

  // ----- stream

  #onData(arrayBuffer: ArrayBuffer, isLast: boolean): void {
    if (this.#closed) return;
    const limits = this.#deps.config.ingress;
    // uWS reuses the ArrayBuffer after this callback returns: copy it.
    const chunk = Buffer.from(new Uint8Array(arrayBuffer));
    this.#received += chunk.length;
    if (this.#received > limits.maxBodyBytes) return void this.fail(tooLarge(limits.maxBodyBytes));
    try {
      this.#scanner.write(chunk);
    } catch (error) {
      if (error instanceof JsonScanError) return void this.#failUnparseable(error);
      throw error;
    }
    this.#hash.update(chunk);
    try {
      if (!this.#upload.write(chunk)) this.#pauseBody();
    } catch (error) {
      return void this.fail({ status: 503, code: 'STORAGE_UNAVAILABLE', message: `the file could not be stored: ${errorMessage(error)}` });
    }
    if (isLast) {
      this.#bodyComplete = true;
      clearInterval(this.#rateTimer);
      this.#finish().catch((error: unknown) => {
        this.#log.error({ err: error }, 'import failed unexpectedly');
        void this.fail({ status: 500, code: 'INTERNAL', message: 'the import failed unexpectedly' });
      });
    }
  }

  #pauseBody(): void {
    this.#pausedByUs = true;
    this.#windowHeldBack = true;
    this.#answerer.res.pause();
  }

  #checkRate(minBytesPerWindow: number): void {
    if (this.#closed) return;
    const limits = this.#deps.config.ingress;
    const arrived = this.#received - this.#receivedAtWindowStart;
    const heldBack = this.#windowHeldBack || this.#pausedByUs;
    this.#receivedAtWindowStart = this.#received;
    this.#windowHeldBack = this.#pausedByUs;
    if (heldBack || arrived >= minBytesPerWindow) return;
    this.#log.warn({ bytes_received: this.#received, bytes_in_window: arrived }, 'body too slow; closing the connection');
    void this.fail({
      status: 408,
      code: 'BODY_TOO_SLOW',
      message: `the body arrived slower than ${limits.bodyMinBytesPerSecond} bytes/s over ${limits.bodyRateWindowMs} ms`,
      extra: { bytes_received: this.#received },
    });
  }

  /** Called by the response's onAborted. */
  clientAborted(): void {
    if (this.#closed) return;
    if (this.#bodyComplete) {
      // The file is whole: the import goes on to its outcome (stored and announced, or
      // removed). A retry with the same X-Request-Id gets 409 until then, then this result.
      this.#log.warn({ bytes_received: this.#received }, 'client went away while its import finishes; it continues');
      return;
    }
    this.#log.warn({ bytes_received: this.#received }, 'client went away mid-upload; nothing stored');
    this.#close('failed');
  }

  async #failUnparseable(error: JsonScanError): Promise<void> {
    const { tenant, contentType, filename } = this.#head;
    const event: FileExtractError = {
      request_id: this.requestId,
      tenant,
      reason_code: error.code,
      message: error.message,
      offset: error.offset,
      bytes_received: this.#received,
      content_type: contentType ?? null,
      original_filename: filename,
      received_at: this.#receivedAt,
    };
    await this.fail({ status: 400, code: error.code, message: error.message, extra: { offset: error.offset } }, event);
    this.#log.info({ code: error.code, offset: error.offset }, 'refused an unparseable file');
  }

  // ----- finish

  async #finish(): Promise<void> {
    const { config, metrics, dedupe } = this.#deps;
    const { tenant, contentType, filename } = this.#head;
    const requestId = this.requestId;
    let scan: ScanResult;
    try {
      scan = this.#scanner.end();
    } catch (error) {
      if (error instanceof JsonScanError) return this.#failUnparseable(error);
      throw error;
    }
    const sha256 = this.#hash.digest('hex');
    const claim = await this.#durable;
    if (claim.kind === 'done') {
      this.#close('duplicate');
      dedupe.complete(tenant, requestId, claim.result);
      metrics.dedupeHits.inc();
      this.#log.info('a retry of an import already accepted (by this or another ingress): answered with its result');
      return this.#answerer.answer(202, { ...claim.result, duplicate: true });
    }
    if (claim.kind === 'in-flight') {
      return this.fail({
        status: 409,
        code: 'IMPORT_IN_PROGRESS',
        message: 'an import with this X-Request-Id is still running',
        extra: { lease_until: new Date(claim.leaseUntil).toISOString() },
      });
    }
    if (claim.kind === 'error') {
      metrics.claimFailures.inc({ operation: 'claim' });
      this.#log.error({ err: claim.error }, 'claiming the request id failed');
      return this.fail({ status: 503, code: 'STORAGE_UNAVAILABLE', message: `the request id could not be claimed: ${errorMessage(claim.error)}` });
    }
    let stored: { etag: string; size: number };
    try {
      stored = await this.#upload.finish({ sha256, 'record-count': String(scan.records), format: scan.format });
    } catch (error) {
      this.#log.error({ err: error }, 'storing the file failed');
      return this.fail({ status: 503, code: 'STORAGE_UNAVAILABLE', message: `the file could not be stored: ${errorMessage(error)}` });
    }
    this.#stored = true;
    // The event and the 202 name the stored object alike.
    const file = { request_id: requestId, tenant, bucket: config.s3.bucket, key: this.#key, etag: stored.etag, size: stored.size };
    const event: FileExtractSuccess = {
      ...file,
      sha256,
      record_count: scan.records,
      format: scan.format,
      content_type: contentType ?? null,
      original_filename: filename,
      received_at: this.#receivedAt,
      accepted_at: Date.now(),
      pieces: this.#pieces.finish(scan.format),
    };
    try {
      await this.#produce(topics.fileExtractSuccess.name, 'FileExtractSuccess', event);
    } catch (error) {
      // Never a 202 without the event: remove the object so no half-import remains.
      this.#log.error({ err: error }, 'FileExtractSuccess was not acknowledged; deleting the stored file');
      await this.#upload
        .deleteStored()
        .catch((deleteError: unknown) => this.#log.error({ err: deleteError, key: this.#key }, 'deleting the unannounced file failed; it has no event'));
      return this.fail({ status: 503, code: 'EVENT_NOT_ACKNOWLEDGED', message: `the import event could not be produced: ${errorMessage(error)}` });
    }
    const accepted: ImportAccepted = {
      ...file,
      records: scan.records,
      format: scan.format,
      sha256,
      status_url: `${config.ingress.monitoringUrl.replace(/\/+$/, '')}/imports/${requestId}?tenant=${tenant}`,
    };
    if (claim.kind === 'claimed') {
      // Before the 202: once answered, a retry anywhere must find this result.
      await claim.claim.complete(accepted).catch((error: unknown) => {
        metrics.claimFailures.inc({ operation: 'complete' });
        this.#log.error({ err: error }, 'recording the result in the request id claim failed; a retry after its lease imports again');
      });
    }
    dedupe.complete(tenant, requestId, accepted);
    metrics.bytesIngested.inc(stored.size);
    metrics.recordsCounted.inc(scan.records);
    this.#close('accepted');
    this.#log.info({ key: this.#key, size: stored.size, records: scan.records, format: scan.format }, 'file accepted');
    this.#answerer.answer(202, accepted);
  }

  async #produce(topic: string, eventType: string, value: FileExtractSuccess | FileExtractError): Promise<void> {
    const { codec, sendEvent, metrics } = this.#deps;
    try {
      const encoded = await codec.encode(topic, value);
      await sendEvent(topic, {
        key: fileKey(this.#head.tenant, this.requestId),
        value: encoded,
        headers: { request_id: this.requestId, event_type: eventType, 'content-type': avroContentType },
      });
      metrics.eventsProduced.inc({ event_type: eventType, result: 'ok' });
    } catch (error) {
      metrics.eventsProduced.inc({ event_type: eventType, result: 'error' });
      throw error;
    }
  }

  // ----- the one way to fail, the one clean-up

  /**
   * Ends the import with an error answer. `event`: a FileExtractError produced (and awaited)
   * before the answer; the client's answer does not depend on it, the file is refused either way.
   */
  async fail(failure: ImportFailure, event?: FileExtractError): Promise<void> {
    const first = !this.#closed;
    this.#close('failed', event === undefined);
    if (event !== undefined && first) {
      if (!this.#answerer.aborted) this.#answerer.res.pause();
      try {
        await this.#produce(topics.fileExtractError.name, 'FileExtractError', event);
      } catch (produceError) {
        this.#log.error({ err: produceError }, 'FileExtractError could not be produced');
      }
      this.#release();
    }
    this.#answerer.refuse(failure);
  }

  /**
   * The clean-up, exactly once: stop reading, drop the upload unless stored, leave the
   * in-flight count and, unless the import has a durable result, free its request id so a
   * retry, here or on another ingress, may try again. `release`: false when the caller frees
   * the id itself later (after producing a FileExtractError).
   */
  #close(outcome: Outcome, release = true): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#rateTimer);
    if (!this.#stored) {
      void this.#upload.abort().catch((error: unknown) => this.#log.error({ err: error }, 'aborting the upload failed'));
    }
    const { inFlight, metrics } = this.#deps;
    inFlight.count--;
    metrics.uploadsInFlight.dec();
    inFlight.changed();
    if (outcome === 'failed' && release) this.#release();
    this.#onClosed();
  }

  #release(): void {
    const { dedupe, metrics } = this.#deps;
    dedupe.release(this.#head.tenant, this.requestId);
    void this.#durable
      .then((outcome) => (outcome.kind === 'claimed' ? outcome.claim.release() : undefined))
      .catch((error: unknown) => {
        metrics.claimFailures.inc({ operation: 'release' });
        this.#log.warn({ err: error }, 'releasing the request id claim failed; a retry waits for its lease to end');
      });
  }
}
