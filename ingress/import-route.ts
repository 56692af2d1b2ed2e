/**
 * POST /import/:tenant — parse the body as it streams in, store it in S3 at the same time,
 * and answer only once the outcome is durable:
 *   202  stored and its FileExtractSuccess acknowledged by Kafka (acks=all);
 *   400  not parseable: nothing stored, a FileExtractError produced;
 *   4xx  refused before anything is stored (tenant, auth, content type, size);
 *   503  storage or Kafka unavailable: nothing stored, the client may retry with the same id.
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { header } from '../core/http.js';
import { startImportSession, type ImportSessionDeps } from './import-session.js';

export type { ImportAccepted } from './import-session.js';
export type ImportRouteDeps = ImportSessionDeps;

/** A filename is only a label: printable, at most 255 characters. */
function cleanFilename(value: string | undefined): string | null {
  if (value === undefined) return null;
  let decoded = value;
  try {
    decoded = decodeURIComponent(value);
  } catch {
    // keep it as sent
  }
  // Control characters would end up in S3 metadata and log lines.
  // eslint-disable-next-line no-control-regex
  const printable = decoded.replace(/[\u0000-\u001f\u007f]/g, '');
  const cleaned = printable.slice(0, 255).trim();
  return cleaned === '' ? null : cleaned;
}

function queryParam(query: string, name: string): string | undefined {
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq) === name) return pair.slice(eq + 1);
  }
  return undefined;
}

/** The route only reads the request (valid until the handler returns); the import session does the rest. */
export function registerImportRoute(app: TemplatedApp, deps: ImportRouteDeps): void {
  app.post('/import/:tenant', (res: HttpResponse, req: HttpRequest) => {
    const started = process.hrtime.bigint();
    startImportSession(
      deps,
      res,
      {
        tenant: req.getParameter(0) ?? '',
        requestId: header(req, 'x-request-id'),
        contentType: header(req, 'content-type'),
        contentLength: header(req, 'content-length'),
        authorization: header(req, 'authorization'),
        filename: cleanFilename(header(req, 'x-filename') ?? queryParam(req.getQuery() ?? '', 'filename')),
      },
      started,
    );
  });
}
