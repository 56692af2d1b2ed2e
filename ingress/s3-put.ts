/**
 * A lean S3 PutObject for the small-file path: one SigV4-signed PUT over a keep-alive undici
 * pool: the AWS SDK's middleware stack costs several times the CPU of the signed request
 * itself (bench:ingest's "S3 PutObject" rows, bench/results.md), and small files are the
 * ingress's hot path. Large files keep using the SDK's multipart calls (ingress/s3-upload.ts).
 * The payload hash is the sha256 the ingress computes while the body streams in anyway.
 */
import { createHash, createHmac } from 'node:crypto';
import { Pool } from 'undici';
import type { S3Config } from '../core/config.js';

export interface LeanPutInput {
  key: string;
  body: Buffer;
  contentType: string;
  metadata: Record<string, string>;
  /** Hex SHA-256 of `body`. */
  sha256: string;
  /**
   * Conditional write (S3's If-None-Match / If-Match): `'*'` creates the object only if there is
   * none; an ETag replaces it only if it is still that version. A failed condition is a 412.
   */
  ifNoneMatch?: '*';
  ifMatch?: string;
}

export class S3RequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = code === '' ? 'S3RequestError' : code;
  }
}

/** RFC 3986 encoding as SigV4 wants it (the path keeps its slashes). */
function encodeRfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

export interface SignedRequest {
  path: string;
  headers: Record<string, string>;
}

/** Signs a PUT of an object (AWS Signature Version 4, header-based, signed payload hash). */
export function signPut(config: S3Config, input: Omit<LeanPutInput, 'body'> & { length: number }, now: Date): SignedRequest {
  const headers: Record<string, string> = { 'content-length': String(input.length), 'content-type': input.contentType };
  for (const [name, value] of Object.entries(input.metadata)) headers[`x-amz-meta-${name.toLowerCase()}`] = value;
  if (input.ifNoneMatch !== undefined) headers['if-none-match'] = input.ifNoneMatch;
  if (input.ifMatch !== undefined) headers['if-match'] = `"${input.ifMatch}"`;
  return signRequest(config, 'PUT', input.key, headers, input.sha256, now);
}

const emptySha256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Signs a request on one object; `headers` are signed with it (host, date and payload hash added). */
function signRequest(config: S3Config, method: 'GET' | 'PUT', key: string, extraHeaders: Record<string, string>, sha256: string, now: Date): SignedRequest {
  const endpoint = new URL(config.endpoint);
  const host = config.forcePathStyle ? endpoint.host : `${config.bucket}.${endpoint.host}`;
  const basePath = endpoint.pathname.replace(/\/+$/, '');
  const keyPath = key.split('/').map(encodeRfc3986).join('/');
  const path = config.forcePathStyle ? `${basePath}/${encodeRfc3986(config.bucket)}/${keyPath}` : `${basePath}/${keyPath}`;
  const amzDate = now
    .toISOString()
    .replace(/[:-]/g, '')
    .replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const headers: Record<string, string> = { ...extraHeaders, host, 'x-amz-content-sha256': sha256, 'x-amz-date': amzDate };
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((name) => `${name}:${headers[name]!.trim().replace(/\s+/g, ' ')}\n`).join('');
  const signedHeaders = names.join(';');
  const canonicalRequest = [method, path, '', canonicalHeaders, signedHeaders, sha256].join('\n');
  const scope = `${day}/${config.region}/s3/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonicalRequest, 'utf8').digest('hex')].join('\n');
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${config.secretAccessKey}`, day), config.region), 's3'), 'aws4_request');
  const signature = createHmac('sha256', signingKey).update(stringToSign, 'utf8').digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${config.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return { path, headers };
}

export interface LeanS3Put {
  put(input: LeanPutInput): Promise<{ etag: string }>;
  /** A small object whole (claims, not imported files); undefined when there is none. */
  get(key: string): Promise<{ etag: string; body: Buffer } | undefined>;
  close(): Promise<void>;
}

function etagOf(headers: Record<string, string | string[] | undefined>): string {
  const etag = headers.etag;
  return String(Array.isArray(etag) ? etag[0] : (etag ?? '')).replaceAll('"', '');
}

function requestError(method: string, key: string, status: number, text: string): S3RequestError {
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? '';
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? text.slice(0, 200);
  return new S3RequestError(status, code, `${method} ${key}: ${status} ${code} ${message}`);
}

export function createLeanS3Put(config: S3Config, options: { connections?: number } = {}): LeanS3Put {
  const endpoint = new URL(config.endpoint);
  const origin = config.forcePathStyle ? endpoint.origin : `${endpoint.protocol}//${config.bucket}.${endpoint.host}`;
  const pool = new Pool(origin, {
    connections: options.connections ?? 128,
    keepAliveTimeout: 30_000,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  return {
    async put(input) {
      const { path, headers } = signPut(config, { ...input, length: input.body.length }, new Date());
      const { host: _host, ...sent } = headers;
      const response = await pool.request({ method: 'PUT', path, headers: sent, body: input.body });
      const text = await response.body.text();
      if (response.statusCode >= 300) throw requestError('PUT', input.key, response.statusCode, text);
      return { etag: etagOf(response.headers) };
    },
    async get(key) {
      const { path, headers } = signRequest(config, 'GET', key, {}, emptySha256, new Date());
      const { host: _host, ...sent } = headers;
      const response = await pool.request({ method: 'GET', path, headers: sent });
      const body = Buffer.from(await response.body.arrayBuffer());
      if (response.statusCode === 404) return undefined;
      if (response.statusCode >= 300) throw requestError('GET', key, response.statusCode, body.toString('utf8'));
      return { etag: etagOf(response.headers), body };
    },
    close: () => pool.close(),
  };
}
