/**
 * The lineage API and the page:
 *   GET /imports/:request_id?tenant   one import's lineage (404 IMPORT_NOT_FOUND; 409
 *                                     AMBIGUOUS_REQUEST_ID when tenants share the id and none is named);
 *                                     its page when the client asks for text/html first (a browser)
 *   GET /imports/:request_id/errors?tenant&format&limit&after
 *                                     the import's error report: a JSON page (`next` cursor), or every
 *                                     entry as an NDJSON or CSV download (?format= or Accept)
 *   GET /imports?tenant&status&limit  { imports: [...] }, newest first (400 on bad parameters)
 *   GET /                             the HTML page (same filters), refreshed live by polling the API
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { header, readSmallBody, sendJson, statusText, streamResponse, trackResponse, type ResponseState } from '../core/http.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { toJson } from './lineage.js';
import { csvHeader, csvRows, encodeCursor, ndjsonLine, reportContentTypes, toEntryJson, type Cursor } from './error-report.js';
import type { LineageStore, ListQuery, StoredImport } from './lineage-store.js';
import { scopeTenant, tokenCookie, type MonitoringAccess, type Viewer } from './access.js';
import { pageErrorLimit, renderImportPage, wantsHtml } from './import-page.js';
import { contentSecurityPolicy, renderLoginPage, renderPage } from './page.js';
import { parseErrorsQuery, parseImportQuery, parseListQuery, parseRequestId, type QueryProblem } from './query.js';

/** Entries read from the database per query while a download streams. */
const downloadPageSize = 500;

export interface RouteDeps {
  store: LineageStore;
  access: MonitoringAccess;
  logger: Logger;
  /** Imports the page lists when no limit is asked for. */
  pageLimit: number;
}

const noStore = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

function badRequest(state: ResponseState, problem: QueryProblem): void {
  sendJson(state, 400, { error: problem }, noStore);
}

function unavailable(state: ResponseState, logger: Logger, error: unknown): void {
  logger.warn({ err: error }, 'reading the lineage failed');
  sendJson(state, 503, { error: { code: 'LINEAGE_UNAVAILABLE', message: `the lineage store did not answer: ${errorMessage(error)}` } }, {
    ...noStore,
    'retry-after': '1',
  });
}

function sendHtml(state: ResponseState, status: number, html: string, headers: Record<string, string> = {}): void {
  if (state.aborted || state.done) return;
  state.done = true;
  state.res.cork(() => {
    state.res.writeStatus(statusText[status] ?? String(status));
    for (const [name, value] of Object.entries(headers)) state.res.writeHeader(name, value);
    state.res.writeHeader('content-type', 'text/html; charset=utf-8');
    state.res.writeHeader('content-security-policy', contentSecurityPolicy);
    state.res.writeHeader('x-content-type-options', 'nosniff');
    state.res.writeHeader('referrer-policy', 'no-referrer');
    state.res.writeHeader('cache-control', 'no-store');
    state.res.writeHeader('vary', 'accept');
    state.res.end(html);
  });
}

/** The page's filter form sends empty fields (`tenant=&status=`): those mean "any". */
export function dropEmptyParams(queryString: string): string {
  return queryString
    .split('&')
    .filter((part) => part !== '' && !part.endsWith('='))
    .join('&');
}

/** 303 to `location`, with cookies to set. */
function redirect(state: ResponseState, location: string, cookie: string): void {
  if (state.aborted || state.done) return;
  state.done = true;
  state.res.cork(() => {
    state.res.writeStatus('303 See Other');
    state.res.writeHeader('location', location);
    state.res.writeHeader('set-cookie', cookie);
    state.res.writeHeader('cache-control', 'no-store');
    state.res.end();
  });
}

export function registerRoutes(app: TemplatedApp, deps: RouteDeps): void {
  const { store, logger, access } = deps;

  /** The request's viewer, or undefined once it was answered 401 (the sign-in page for a browser). */
  function viewerOrRefuse(state: ResponseState, req: HttpRequest, html: boolean): Viewer | undefined {
    const viewer = access.viewerOf(header(req, 'authorization'), header(req, 'cookie'));
    if (viewer !== undefined) return viewer;
    if (html) {
      sendHtml(state, 401, renderLoginPage());
    } else {
      sendJson(
        state,
        401,
        { error: { code: 'UNAUTHORIZED', message: 'a token is required: Authorization: Bearer <tenant or operator token>' } },
        { ...noStore, 'www-authenticate': 'Bearer realm="etl-monitoring"' },
      );
    }
    return undefined;
  }

  function notFound(state: ResponseState, requestId: string, tenant: string | undefined): void {
    const of = tenant === undefined ? '' : ` of tenant ${tenant}`;
    sendJson(state, 404, { error: { code: 'IMPORT_NOT_FOUND', message: `no import ${requestId}${of} is known`, request_id: requestId } }, noStore);
  }

  /** The whole report from `after` on, read from the database one page at a time. */
  async function* reportChunks(tenant: string, requestId: string, format: 'ndjson' | 'csv', after: Cursor | undefined): AsyncGenerator<string> {
    if (format === 'csv') yield csvHeader();
    let cursor = after;
    for (;;) {
      const page = await store.errorPage({ tenant, requestId, after: cursor, limit: downloadPageSize });
      if (page.length > 0) yield page.map((item) => (format === 'csv' ? csvRows(item.entry) : ndjsonLine(item.entry))).join('');
      const last = page.at(-1);
      if (page.length < downloadPageSize || last === undefined) return;
      cursor = { recordIndex: last.entry.recordIndex ?? -1, id: last.id };
    }
  }

  /** The one import of `requestId` (of `tenant`), or the 404 / 409 answer. */
  async function findImport(state: ResponseState, requestId: string, tenant: string | undefined): Promise<StoredImport | undefined> {
    const found = await store.find(requestId, tenant);
    const [only] = found;
    if (only === undefined) {
      notFound(state, requestId, tenant);
      return undefined;
    }
    if (found.length > 1) {
      sendJson(
        state,
        409,
        {
          error: {
            code: 'AMBIGUOUS_REQUEST_ID',
            message: `${found.length} tenants sent request id ${requestId}: name one with ?tenant=`,
            request_id: requestId,
          },
        },
        noStore,
      );
      return undefined;
    }
    return only;
  }

  app.get('/imports/:request_id', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    const parsed = parseRequestId(req.getParameter(0) ?? '');
    if (!parsed.ok) return badRequest(state, parsed.problem);
    const query = parseImportQuery(req.getQuery() ?? '');
    if (!query.ok) return badRequest(state, query.problem);
    const html = wantsHtml(header(req, 'accept'));
    const viewer = viewerOrRefuse(state, req, html);
    if (viewer === undefined) return;
    const scope = scopeTenant(viewer, query.value.tenant);
    if (scope === 'other') return notFound(state, parsed.value, query.value.tenant);
    (async () => {
      const found = await findImport(state, parsed.value, scope.tenant);
      if (found === undefined) return;
      const item = toJson(found.lineage, found.updatedAt);
      if (!html) return sendJson(state, 200, item, { ...noStore, vary: 'accept' });
      const { tenant, requestId } = found.lineage;
      const [counts, first] = await Promise.all([
        store.errorCounts(tenant, requestId),
        store.errorPage({ tenant, requestId, limit: pageErrorLimit }),
      ]);
      sendHtml(state, 200, renderImportPage(item, { counts, first: first.map((entry) => toEntryJson(entry.entry)) }));
    })().catch((error: unknown) => unavailable(state, logger, error));
  });

  app.get('/imports/:request_id/errors', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    const parsed = parseRequestId(req.getParameter(0) ?? '');
    if (!parsed.ok) return badRequest(state, parsed.problem);
    const query = parseErrorsQuery(req.getQuery() ?? '', header(req, 'accept'));
    if (!query.ok) return badRequest(state, query.problem);
    const viewer = viewerOrRefuse(state, req, false);
    if (viewer === undefined) return;
    const scope = scopeTenant(viewer, query.value.tenant);
    if (scope === 'other') return notFound(state, parsed.value, query.value.tenant);
    const { format, limit, after } = query.value;
    (async () => {
      const found = await findImport(state, parsed.value, scope.tenant);
      if (found === undefined) return;
      const { tenant, requestId } = found.lineage;
      if (format === 'json') {
        const [counts, page] = await Promise.all([
          store.errorCounts(tenant, requestId),
          store.errorPage({ tenant, requestId, after, limit: limit + 1 }),
        ]);
        const shown = page.slice(0, limit);
        const last = shown.at(-1);
        const next = page.length > limit && last !== undefined ? encodeCursor({ recordIndex: last.entry.recordIndex ?? -1, id: last.id }) : null;
        sendJson(
          state,
          200,
          {
            request_id: requestId,
            tenant,
            counts,
            errors: shown.map((item) => toEntryJson(item.entry)),
            next,
            next_url: next === null ? null : `/imports/${requestId}/errors?tenant=${tenant}&limit=${limit}&after=${next}`,
          },
          noStore,
        );
        return;
      }
      const headers = {
        ...noStore,
        'content-type': reportContentTypes[format],
        'content-disposition': `attachment; filename="${requestId}-errors.${format}"`,
      };
      await streamResponse(state, 200, headers, reportChunks(tenant, requestId, format, after));
    })().catch((error: unknown) => {
      if (!state.done) unavailable(state, logger, error);
      else logger.warn({ err: error }, 'an error report download was cut off');
    });
  });

  app.get('/imports', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    const parsed = parseListQuery(req.getQuery() ?? '');
    if (!parsed.ok) return badRequest(state, parsed.problem);
    const viewer = viewerOrRefuse(state, req, false);
    if (viewer === undefined) return;
    const scope = scopeTenant(viewer, parsed.value.tenant);
    if (scope === 'other') {
      sendJson(state, 200, { imports: [] }, noStore);
      return;
    }
    store.list({ ...parsed.value, tenant: scope.tenant }).then(
      (found) => sendJson(state, 200, { imports: found.map((item) => toJson(item.lineage, item.updatedAt)) }, noStore),
      (error: unknown) => unavailable(state, logger, error),
    );
  });

  app.get('/', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    const parsed = parseListQuery(dropEmptyParams(req.getQuery() ?? ''), deps.pageLimit);
    if (!parsed.ok) {
      const fallback: ListQuery = { limit: deps.pageLimit };
      return sendHtml(state, 400, renderPage([], fallback, { error: parsed.problem.message }));
    }
    const viewer = viewerOrRefuse(state, req, true);
    if (viewer === undefined) return;
    const signOut = access.required;
    const scope = scopeTenant(viewer, parsed.value.tenant);
    if (scope === 'other') return sendHtml(state, 200, renderPage([], parsed.value, { signOut }));
    store.list({ ...parsed.value, tenant: scope.tenant }).then(
      (found) => sendHtml(state, 200, renderPage(found.map((item) => toJson(item.lineage, item.updatedAt)), parsed.value, { signOut })),
      (error: unknown) => {
        logger.warn({ err: error }, 'reading the lineage for the page failed');
        sendHtml(state, 503, renderPage([], parsed.value, { error: 'The lineage store did not answer; retrying.', signOut }));
      },
    );
  });

  app.get('/login', (res: HttpResponse) => {
    const state = trackResponse(res);
    sendHtml(state, 200, renderLoginPage());
  });

  // The sign-in form: a valid token becomes an HttpOnly, SameSite=Strict cookie the page and its
  // polling send along; a wrong one gets the form again.
  app.post('/login', (res: HttpResponse) => {
    const state = trackResponse(res);
    readSmallBody(state, 4096).then((body) => {
      if (body === undefined) return sendHtml(state, 413, renderLoginPage({ error: 'The form was too large.' }));
      const token = new URLSearchParams(body.toString('utf8')).get('token') ?? '';
      if (!access.required) return redirect(state, './', `${tokenCookie}=; Path=/; Max-Age=0`);
      if (access.viewerOfToken(token) === undefined) {
        logger.info('a sign-in with a token that is not ours');
        return sendHtml(state, 401, renderLoginPage({ error: 'That token is not valid here.' }));
      }
      redirect(state, './', `${tokenCookie}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`);
    });
  });

  app.post('/logout', (res: HttpResponse) => {
    const state = trackResponse(res);
    readSmallBody(state, 4096).then(() => redirect(state, 'login', `${tokenCookie}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict`));
  });
}
