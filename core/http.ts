/**
 * Small helpers over uWebSockets.js shared by the services: JSON answers that respect
 * uWS's rules (cork, never touch an aborted response), the standard operational routes
 * (/liveness, /readiness, /metrics), listen and close.
 */
import { STATUS_CODES } from 'node:http';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import type { Registry } from 'prom-client';
import type { BuildInfo } from './build-info.js';
import type { Readiness } from './health.js';
import type { LoadedUws } from './uws.js';

export const statusText: Record<number, string> = {
  200: '200 OK',
  202: '202 Accepted',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  408: '408 Request Timeout',
  409: '409 Conflict',
  413: '413 Payload Too Large',
  415: '415 Unsupported Media Type',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
};

/** The status line's code and reason (uWS writes the text as given; the reason is required by RFC 9112's SP). */
function statusLine(status: number): string {
  return statusText[status] ?? `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
}

/** A response plus the flag uWS needs: once aborted, the response must not be used. */
export interface ResponseState {
  res: HttpResponse;
  aborted: boolean;
  done: boolean;
  /** Called once when the client goes away (set by whoever waits on the response, e.g. a stream). */
  onAbort?: () => void;
}

export function trackResponse(res: HttpResponse, onAborted?: () => void): ResponseState {
  const state: ResponseState = { res, aborted: false, done: false };
  res.onAborted(() => {
    state.aborted = true;
    onAborted?.();
    state.onAbort?.();
  });
  return state;
}

/**
 * A small request body (a form), whole; undefined when it is larger than `maxBytes` or the
 * client went away. uWS reuses a chunk's memory after the callback, hence the copies.
 */
export function readSmallBody(state: ResponseState, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    state.onAbort = () => resolve(undefined);
    state.res.onData((chunk, isLast) => {
      size += chunk.byteLength;
      if (size > maxBytes) over = true;
      else chunks.push(Buffer.from(chunk.slice(0)));
      if (isLast) resolve(over ? undefined : Buffer.concat(chunks));
    });
  });
}

/** Resolves when uWS has sent what it buffered, or when the client went away. */
function drained(state: ResponseState): Promise<void> {
  return new Promise((resolve) => {
    state.onAbort = resolve;
    state.res.onWritable(() => {
      resolve();
      return true;
    });
  });
}

/**
 * A body of unknown length (chunked), written as `chunks` yields it: when uWS has to buffer a
 * chunk, the next one is asked for only after the socket drained, so a large download never
 * piles up in memory. Stops reading when the client goes away; a failure of `chunks` after the
 * status was sent closes the connection, so the client sees a cut body rather than a short one.
 */
export async function streamResponse(state: ResponseState, status: number, headers: Record<string, string>, chunks: AsyncIterable<string>): Promise<void> {
  if (state.aborted || state.done) return;
  state.done = true;
  state.res.cork(() => {
    state.res.writeStatus(statusLine(status));
    for (const [name, value] of Object.entries(headers)) state.res.writeHeader(name, value);
  });
  try {
    for await (const chunk of chunks) {
      if (state.aborted) return;
      let written = true;
      state.res.cork(() => {
        written = state.res.write(chunk);
      });
      if (!written) await drained(state);
      if (state.aborted) return;
    }
  } catch (error) {
    if (!state.aborted) state.res.close();
    throw error;
  }
  if (!state.aborted) state.res.cork(() => state.res.end());
}

export function sendJson(
  state: ResponseState,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  options: { close?: boolean } = {},
): boolean {
  if (state.aborted || state.done) return false;
  state.done = true;
  const payload = JSON.stringify(body);
  state.res.cork(() => {
    state.res.writeStatus(statusLine(status));
    state.res.writeHeader('content-type', 'application/json');
    for (const [name, value] of Object.entries(headers)) state.res.writeHeader(name, value);
    // closeConnection: used when the request body was not (fully) read, so the rest of it
    // cannot be mistaken for the next request on a kept-alive connection.
    state.res.end(payload, options.close === true);
  });
  return true;
}

export function sendText(state: ResponseState, status: number, body: string, contentType: string): void {
  if (state.aborted || state.done) return;
  state.done = true;
  state.res.cork(() => {
    state.res.writeStatus(statusLine(status));
    state.res.writeHeader('content-type', contentType);
    state.res.end(body);
  });
}

export interface OperationalRoutes {
  service: string;
  buildInfo: BuildInfo;
  readiness: () => Promise<Readiness>;
  metrics: Registry;
  /** Extra liveness fields, e.g. which uWS implementation runs. */
  details?: () => Record<string, unknown>;
}

const startedAt = Date.now();

/** GET /liveness, /readiness and /metrics, the same on every service. */
export function addOperationalRoutes(app: TemplatedApp, routes: OperationalRoutes): void {
  app.get('/liveness', (res: HttpResponse) => {
    const state = trackResponse(res);
    sendJson(state, 200, {
      status: 'alive',
      service: routes.service,
      ...routes.buildInfo,
      node_version: process.version,
      uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
      ...routes.details?.(),
    });
  });
  app.get('/readiness', (res: HttpResponse) => {
    const state = trackResponse(res);
    routes.readiness().then(
      (result) => sendJson(state, result.ready ? 200 : 503, { status: result.ready ? 'ready' : 'not ready', ...result }),
      (error: unknown) => sendJson(state, 503, { status: 'not ready', error: String(error) }),
    );
  });
  app.get('/metrics', (res: HttpResponse) => {
    const state = trackResponse(res);
    routes.metrics.metrics().then(
      (text) => sendText(state, 200, text, routes.metrics.contentType),
      (error: unknown) => sendJson(state, 500, { error: { code: 'METRICS_FAILED', message: String(error) } }),
    );
  });
}

export function notFound(app: TemplatedApp): void {
  app.any('/*', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    sendJson(state, 404, { error: { code: 'NOT_FOUND', message: `no route for ${req.getMethod().toUpperCase()} ${req.getUrl()}` } }, {}, { close: true });
  });
}

export function listen(app: TemplatedApp, host: string, port: number): Promise<us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (socket) resolve(socket);
      else reject(new Error(`cannot listen on ${host}:${port} (port in use?)`));
    });
  });
}

export function closeListener(uws: LoadedUws, socket: us_listen_socket | undefined): void {
  if (socket !== undefined) uws.uws.us_listen_socket_close(socket);
}

/** Reads a header; uWS lower-cases header names. */
export function header(req: HttpRequest, name: string): string | undefined {
  const value = req.getHeader(name);
  return value === '' ? undefined : value;
}
