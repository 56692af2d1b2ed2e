/**
 * One attempt of one file: a POST whose body streams from disk, answered as an AttemptResult.
 *
 * It asks `Expect: 100-continue` and starts the body only after the interim answer (or after
 * `continueTimeoutMs`, as curl does, for a server that never sends one). The ingress refuses
 * before reading a body (401, 400 tenant, 413 by Content-Length, 415, 409, 503 at its upload
 * limit) and then closes the connection; a body already on its way makes the kernel reset that
 * connection, and a client still writing saw "EPIPE" instead of the answer. uWebSockets.js
 * writes "100 Continue" and such a refusal in one go, so here the refusal is read before a
 * single body byte is sent. node:http rather than undici: undici has no 100-continue for HTTP/1.1.
 */
import { createReadStream } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AttemptResult } from './import-client.js';

export interface SendFileOptions {
  url: string;
  path: string;
  size: number;
  headers: Record<string, string>;
  /** Bytes of this attempt just went out (per chunk read from disk). */
  onBytes: (bytes: number) => void;
  continueTimeoutMs?: number;
}

export function sendFile({ url, path, size, headers, onBytes, continueTimeoutMs = 1000 }: SendFileOptions): Promise<AttemptResult> {
  return new Promise<AttemptResult>((resolve) => {
    const request = new URL(url).protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(url, { method: 'POST', headers: { ...headers, 'content-length': String(size), expect: '100-continue' } });
    let settled = false;
    let answered = false;
    let bodyStarted = false;
    let readError: NodeJS.ErrnoException | undefined;
    let status: number | undefined;
    let retryAfter: string | undefined;
    const chunks: Buffer[] = [];
    const source = createReadStream(path);
    source.on('error', (error: NodeJS.ErrnoException) => (readError = error));

    const finish = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(continueTimer);
      source.destroy();
      req.destroy();
      resolve(result);
    };
    const answer = (): AttemptResult => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = text === '' ? null : (JSON.parse(text) as unknown);
      } catch {
        // Not the ingress's JSON (a proxy's page): kept as text for the summary.
      }
      return { kind: 'answer', status: status!, retryAfter, body };
    };

    const startBody = () => {
      if (bodyStarted || answered || settled) return;
      bodyStarted = true;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          onBytes(chunk.length);
          callback(null, chunk);
        },
      });
      // The request's own failure or answer settles the attempt; the pipeline's rejection adds nothing.
      pipeline(source, counter, req).catch(() => undefined);
    };
    const continueTimer = setTimeout(startBody, continueTimeoutMs);
    // Deferred: a refusal sent together with "100 Continue" is parsed in the same turn, before it.
    req.on('continue', () => setImmediate(startBody));

    req.on('response', (response: IncomingMessage) => {
      answered = true;
      status = response.statusCode ?? 0;
      retryAfter = response.headers['retry-after'];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => finish(answer()));
      response.on('error', () => finish(answer()));
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (readError !== undefined) {
        return finish({ kind: 'file-unreadable', code: readError.code ?? 'READ_FAILED', message: readError.message });
      }
      // The reset that follows an early answer: what arrived of it stands.
      if (status !== undefined) return finish(answer());
      finish({ kind: 'connection-failed', code: error.code ?? 'CONNECTION_FAILED', message: error.message });
    });
    req.flushHeaders();
  });
}
