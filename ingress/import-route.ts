/**
 * POST /import/:tenant — parse the body as it streams in, store it in S3 at the same time,
 * and answer only once the outcome is durable:
 *   202  stored and its FileExtractSuccess acknowledged by Kafka (acks=all);
 *   400  not parseable: nothing stored, a FileExtractError produced;
 *   4xx  refused before anything is stored (tenant, auth, content type, size);
 *   503  storage or Kafka unavailable: nothing stored, the client may retry with the same id.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { avroContentType, type EventCodec } from '../core/event-codec.js';
import { errorMessage } from '../core/errors.js';
import { header, sendJson, trackResponse, type ResponseState } from '../core/http.js';
import { JsonScanError, JsonScanner, type ExpectedFormat, type ScanResult } from '../core/json-stream.js';
import { fileKey, rawObjectKey, topics } from '../core/pipeline.js';
import type { FileExtractError, FileExtractSuccess } from '../schemas/index.js';
import type { TenantTokens } from '../core/tenant-tokens.js';
import type { IngressConfig } from './config.js';
import type { RequestDeduplicator } from './dedupe.js';
import { PiecePlanner } from '../core/file-pieces.js';
import type { ClaimOutcome, ImportClaims } from './import-claims.js';
import type { IngressMetrics } from './metrics.js';
import { isValidRequestId, isValidTenant, uuidv7 } from '../core/request-id.js';
import type { LeanS3Put } from './s3-put.js';
import { StreamingUpload } from './s3-upload.js';
import type { S3Client } from '@aws-sdk/client-s3';

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

export interface ImportRouteDeps {
  config: IngressConfig;
  s3: S3Client;
  /** Signed PUT without the SDK for small files (bench:ingest: ~6× less CPU per PUT). */
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

interface RequestInfo {
  requestId: string;
  tenant: string;
  contentType: string | undefined;
  expect: ExpectedFormat;
  filename: string | null;
  receivedAt: number;
  started: bigint;
}

const route = '/import/:tenant';

type DurableClaim = ClaimOutcome<ImportAccepted> | { kind: 'off' } | { kind: 'error'; error: unknown };

/** `application/json` → one object or array; NDJSON types → lines; none → detect. */
function expectedFormat(contentType: string | undefined): ExpectedFormat | 'unsupported' {
  if (contentType === undefined) return 'detect';
  const [mediaType = '', ...params] = contentType.split(';').map((part) => part.trim().toLowerCase());
  const charset = params.find((param) => param.startsWith('charset='))?.slice('charset='.length).replaceAll('"', '');
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') return 'unsupported';
  if (mediaType === 'application/json') return 'json';
  if (mediaType === 'application/x-ndjson' || mediaType === 'application/ndjson' || mediaType === 'application/jsonl') {
    return 'ndjson';
  }
  return 'unsupported';
}

/** A filename is only a label: printable, at most 255 characters. */
function cleanFilename(value: string | undefined): string | null {
  if (value === undefined) return null;
  let decoded = value;
  try {
    decoded = decodeURIComponent(value);
  } catch {
    // keep it as sent
  }
  // eslint-disable-next-line no-control-regex
  const cleaned = decoded.replace(/[\u0000-\u001f\u007f]/g, '').slice(0, 255).trim();
  return cleaned === '' ? null : cleaned;
}

function queryParam(query: string, name: string): string | undefined {
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq) === name) return pair.slice(eq + 1);
  }
  return undefined;
}


export function registerImportRoute(app: TemplatedApp, deps: ImportRouteDeps): void {
  const { config, metrics } = deps;
  const limits = config.ingress;

  function answer(
    state: ResponseState,
    info: Pick<RequestInfo, 'requestId' | 'started'>,
    status: number,
    body: unknown,
    close = false,
  ): void {
    const headers: Record<string, string> = { 'x-request-id': info.requestId };
    if (status === 503 || status === 429) headers['retry-after'] = '1';
    if (sendJson(state, status, body, headers, { close })) {
      metrics.requests.inc({ route, status: String(status) });
      metrics.requestSeconds.observe({ route }, Number(process.hrtime.bigint() - info.started) / 1e9);
    }
  }

  function refuse(
    state: ResponseState,
    info: Pick<RequestInfo, 'requestId' | 'started'>,
    status: number,
    code: string,
    message: string,
    extra: Record<string, unknown> = {},
  ): void {
    answer(state, info, status, { error: { code, message, request_id: info.requestId, ...extra } }, true);
  }

  app.post('/import/:tenant', (res: HttpResponse, req: HttpRequest) => {
    const started = process.hrtime.bigint();
    // Everything from `req` must be read now: it is invalid once this function returns.
    const rawTenant = req.getParameter(0) ?? '';
    const incomingId = header(req, 'x-request-id');
    const contentType = header(req, 'content-type');
    const contentLength = header(req, 'content-length');
    const authorization = header(req, 'authorization');
    const filename = cleanFilename(header(req, 'x-filename') ?? queryParam(req.getQuery() ?? '', 'filename'));
    let onAbort: () => void = () => undefined;
    const state = trackResponse(res, () => onAbort());

    const validIncomingId = incomingId !== undefined && isValidRequestId(incomingId);
    const requestId = validIncomingId ? incomingId : uuidv7();
    const early = { requestId, started };
    if (incomingId !== undefined && !validIncomingId) {
      return refuse(state, early, 400, 'INVALID_REQUEST_ID', 'X-Request-Id must be 8-128 characters of A-Z, a-z, 0-9, - and _');
    }
    if (!isValidTenant(rawTenant)) {
      return refuse(state, early, 400, 'INVALID_TENANT', 'tenant must match [a-z0-9][a-z0-9._-]{0,62} (no "..")');
    }
    const tenant = rawTenant;
    if (!deps.tokens.allows(tenant, authorization)) {
      return refuse(state, early, 401, 'UNAUTHORIZED', 'a valid "Authorization: Bearer <token>" for this tenant is required');
    }
    const expect = expectedFormat(contentType);
    if (expect === 'unsupported') {
      return refuse(
        state,
        early,
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        'Content-Type must be application/json or application/x-ndjson (UTF-8), or absent',
      );
    }
    if (contentLength !== undefined && Number(contentLength) > limits.maxBodyBytes) {
      return refuse(state, early, 413, 'BODY_TOO_LARGE', `the body exceeds ${limits.maxBodyBytes} bytes`, {
        limit_bytes: limits.maxBodyBytes,
      });
    }
    if (deps.inFlight.count >= limits.maxConcurrentUploads) {
      return refuse(state, early, 503, 'TOO_MANY_UPLOADS', 'the ingress is at its concurrent upload limit; retry shortly');
    }
    const known = deps.dedupe.claim(tenant, requestId);
    if (known?.state === 'done') {
      metrics.dedupeHits.inc();
      return answer(state, early, 202, { ...known.result, duplicate: true }, true);
    }
    if (known?.state === 'in-flight') {
      return refuse(state, early, 409, 'IMPORT_IN_PROGRESS', 'an import with this X-Request-Id is still running');
    }

    const info: RequestInfo = { requestId, tenant, contentType: contentType ?? undefined, expect, filename, receivedAt: Date.now(), started };
    const log = deps.logger.child({ request_id: requestId, tenant });
    // Claimed while the body streams in; awaited before the file is stored (complete()).
    const durable: Promise<DurableClaim> =
      deps.claims === undefined
        ? Promise.resolve({ kind: 'off' })
        : deps.claims.claim(tenant, requestId).catch((error: unknown) => ({ kind: 'error', error }) as const);
    /** The import failed without a durable result: a retry, here or on another ingress, may try again. */
    const release = () => {
      deps.dedupe.release(tenant, requestId);
      void durable
        .then((outcome) => (outcome.kind === 'claimed' ? outcome.claim.release() : undefined))
        .catch((error: unknown) => {
          metrics.claimFailures.inc({ operation: 'release' });
          log.warn({ err: error }, 'releasing the request id claim failed; a retry waits for its lease to end');
        });
    };
    const key = rawObjectKey(tenant, requestId, info.receivedAt);
    const pieces = new PiecePlanner(config.ingress.pieceBytes);
    const scanner = new JsonScanner({
      expect,
      maxDepth: limits.maxDepth,
      maxLineBytes: limits.maxLineBytes,
      onRecordBounds: (index, start, end) => pieces.record(index, start, end),
    });
    const hash = createHash('sha256');
    const upload = new StreamingUpload({
      s3: deps.s3,
      bucket: config.s3.bucket,
      key,
      contentType: expect === 'ndjson' ? 'application/x-ndjson' : 'application/json',
      partSizeBytes: limits.partSizeBytes,
      metadata: {
        'request-id': requestId,
        tenant,
        ...(filename === null ? {} : { 'original-filename': encodeURIComponent(filename) }),
      },
      onDrain: () => {
        pausedByUs = false;
        if (!state.aborted && !state.done) res.resume();
      },
      observe: (operation, seconds, ok) => metrics.s3Seconds.observe({ operation, result: ok ? 'ok' : 'error' }, seconds),
      leanPut: deps.leanPut,
    });
    let received = 0;
    let settled = false;
    deps.inFlight.count++;
    metrics.uploadsInFlight.inc();

    // Slow-body guard: each window must bring at least the minimum rate's bytes, except while
    // the ingress itself holds the body back (S3 backpressure pauses the socket).
    let pausedByUs = false;
    let receivedAtWindowStart = 0;
    let windowHeldBack = false;
    const minBytesPerWindow = Math.ceil((limits.bodyMinBytesPerSecond * limits.bodyRateWindowMs) / 1000);
    const rateTimer =
      minBytesPerWindow === 0
        ? undefined
        : setInterval(() => {
            if (settled) return;
            const arrived = received - receivedAtWindowStart;
            const heldBack = windowHeldBack || pausedByUs;
            receivedAtWindowStart = received;
            windowHeldBack = pausedByUs;
            if (heldBack || arrived >= minBytesPerWindow) return;
            log.warn({ bytes_received: received, bytes_in_window: arrived }, 'body too slow; closing the connection');
            settle();
            release();
            void upload.abort().catch((error: unknown) => log.error({ err: error }, 'aborting the upload failed'));
            refuse(state, info, 408, 'BODY_TOO_SLOW', `the body arrived slower than ${limits.bodyMinBytesPerSecond} bytes/s over ${limits.bodyRateWindowMs} ms`, {
              bytes_received: received,
            });
          }, limits.bodyRateWindowMs);
    rateTimer?.unref();
    const pauseBody = () => {
      pausedByUs = true;
      windowHeldBack = true;
      res.pause();
    };

    const settle = () => {
      if (settled) return false;
      settled = true;
      clearInterval(rateTimer);
      deps.inFlight.count--;
      metrics.uploadsInFlight.dec();
      deps.inFlight.changed();
      return true;
    };

    let bodyComplete = false;
    onAbort = () => {
      if (settled) return;
      if (bodyComplete) {
        // The file is whole: the import goes on to its outcome (stored and announced, or
        // removed). A retry with the same X-Request-Id gets 409 until then, then this result.
        log.warn({ bytes_received: received }, 'client went away while its import finishes; it continues');
        return;
      }
      log.warn({ bytes_received: received }, 'client went away mid-upload; nothing stored');
      release();
      void upload.abort().catch((error: unknown) => log.error({ err: error }, 'aborting the upload failed'));
      settle();
    };

    const failUnparseable = async (error: JsonScanError) => {
      settle();
      res.pause();
      void upload.abort().catch((abortError: unknown) => log.error({ err: abortError }, 'aborting the upload failed'));
      const event: FileExtractError = {
        request_id: requestId,
        tenant,
        reason_code: error.code,
        message: error.message,
        offset: error.offset,
        bytes_received: received,
        content_type: info.contentType ?? null,
        original_filename: filename,
        received_at: info.receivedAt,
      };
      try {
        await produce(topics.fileExtractError.name, 'FileExtractError', event);
      } catch (produceError) {
        // The client's answer does not depend on it: the file was refused either way.
        log.error({ err: produceError }, 'FileExtractError could not be produced');
      }
      release();
      log.info({ code: error.code, offset: error.offset }, 'refused an unparseable file');
      refuse(state, info, 400, error.code, error.message, { offset: error.offset });
    };

    const failTooLarge = () => {
      settle();
      void upload.abort().catch((error: unknown) => log.error({ err: error }, 'aborting the upload failed'));
      release();
      refuse(state, info, 413, 'BODY_TOO_LARGE', `the body exceeds ${limits.maxBodyBytes} bytes`, {
        limit_bytes: limits.maxBodyBytes,
      });
    };

    const produce = async (topic: string, eventType: string, value: FileExtractSuccess | FileExtractError) => {
      try {
        const encoded = await deps.codec.encode(topic, value);
        await deps.sendEvent(topic, {
          key: fileKey(tenant, requestId),
          value: encoded,
          headers: { request_id: requestId, event_type: eventType, 'content-type': avroContentType },
        });
        metrics.eventsProduced.inc({ event_type: eventType, result: 'ok' });
      } catch (error) {
        metrics.eventsProduced.inc({ event_type: eventType, result: 'error' });
        throw error;
      }
    };

    const complete = async () => {
      let scan: ScanResult;
      try {
        scan = scanner.end();
      } catch (error) {
        if (error instanceof JsonScanError) return failUnparseable(error);
        throw error;
      }
      const sha256 = hash.digest('hex');
      const claim = await durable;
      if (claim.kind !== 'claimed' && claim.kind !== 'off') {
        settle();
        await upload.abort().catch(() => undefined);
        if (claim.kind === 'done') {
          deps.dedupe.complete(tenant, requestId, claim.result);
          metrics.dedupeHits.inc();
          log.info('a retry of an import already accepted (by this or another ingress): answered with its result');
          return answer(state, info, 202, { ...claim.result, duplicate: true });
        }
        deps.dedupe.release(tenant, requestId);
        if (claim.kind === 'in-flight') {
          return refuse(state, info, 409, 'IMPORT_IN_PROGRESS', 'an import with this X-Request-Id is still running', {
            lease_until: new Date(claim.leaseUntil).toISOString(),
          });
        }
        metrics.claimFailures.inc({ operation: 'claim' });
        log.error({ err: claim.error }, 'claiming the request id failed');
        return refuse(state, info, 503, 'STORAGE_UNAVAILABLE', `the request id could not be claimed: ${errorMessage(claim.error)}`);
      }
      let stored: { etag: string; size: number };
      try {
        stored = await upload.finish({ sha256, 'record-count': String(scan.records), format: scan.format });
      } catch (error) {
        settle();
        release();
        await upload.abort().catch(() => undefined);
        log.error({ err: error }, 'storing the file failed');
        return refuse(state, info, 503, 'STORAGE_UNAVAILABLE', `the file could not be stored: ${errorMessage(error)}`);
      }
      const event: FileExtractSuccess = {
        request_id: requestId,
        tenant,
        bucket: config.s3.bucket,
        key,
        etag: stored.etag,
        size: stored.size,
        sha256,
        record_count: scan.records,
        format: scan.format,
        content_type: info.contentType ?? null,
        original_filename: filename,
        received_at: info.receivedAt,
        accepted_at: Date.now(),
        pieces: pieces.finish(scan.format),
      };
      try {
        await produce(topics.fileExtractSuccess.name, 'FileExtractSuccess', event);
      } catch (error) {
        // Never a 202 without the event: remove the object so no half-import remains.
        log.error({ err: error }, 'FileExtractSuccess was not acknowledged; deleting the stored file');
        await upload.deleteStored().catch((deleteError: unknown) =>
          log.error({ err: deleteError, key }, 'deleting the unannounced file failed; it has no event'),
        );
        settle();
        release();
        return refuse(state, info, 503, 'EVENT_NOT_ACKNOWLEDGED', `the import event could not be produced: ${errorMessage(error)}`);
      }
      const accepted: ImportAccepted = {
        request_id: requestId,
        tenant,
        bucket: config.s3.bucket,
        key,
        etag: stored.etag,
        size: stored.size,
        records: scan.records,
        format: scan.format,
        sha256,
        status_url: `${config.ingress.monitoringUrl.replace(/\/+$/, '')}/imports/${requestId}?tenant=${tenant}`,
      };
      if (claim.kind === 'claimed') {
        // Before the 202: once answered, a retry anywhere must find this result.
        await claim.claim.complete(accepted).catch((error: unknown) => {
          metrics.claimFailures.inc({ operation: 'complete' });
          log.error({ err: error }, 'recording the result in the request id claim failed; a retry after its lease imports again');
        });
      }
      deps.dedupe.complete(tenant, requestId, accepted);
      metrics.bytesIngested.inc(stored.size);
      metrics.recordsCounted.inc(scan.records);
      settle();
      log.info({ key, size: stored.size, records: scan.records, format: scan.format }, 'file accepted');
      answer(state, info, 202, accepted);
    };

    res.onData((arrayBuffer, isLast) => {
      if (settled) return;
      // uWS reuses the ArrayBuffer after this callback returns: copy it.
      const chunk = Buffer.from(new Uint8Array(arrayBuffer));
      received += chunk.length;
      if (received > limits.maxBodyBytes) return failTooLarge();
      try {
        scanner.write(chunk);
      } catch (error) {
        if (error instanceof JsonScanError) {
          void failUnparseable(error);
          return;
        }
        throw error;
      }
      hash.update(chunk);
      try {
        if (!upload.write(chunk)) pauseBody();
      } catch (error) {
        settle();
        release();
        void upload.abort().catch(() => undefined);
        return refuse(state, info, 503, 'STORAGE_UNAVAILABLE', `the file could not be stored: ${errorMessage(error)}`);
      }
      if (isLast) {
        // The whole body is in: from here on the wait is ours (S3, Kafka), not the client's.
        bodyComplete = true;
        clearInterval(rateTimer);
        complete().catch((error: unknown) => {
          log.error({ err: error }, 'import failed unexpectedly');
          if (settle()) release();
          refuse(state, info, 500, 'INTERNAL', 'the import failed unexpectedly');
        });
      }
    });
  });
}
