/**
 * The lineage API and the page:
 *   GET /imports/:request_id?tenant   one import's lineage (404 IMPORT_NOT_FOUND; 409
 *                                     AMBIGUOUS_REQUEST_ID when tenants share the id and none is named)
 *   GET /imports?tenant&status&limit  { imports: [...] }, newest first (400 on bad parameters)
 *   GET /                             the HTML page (same filters), refreshed live by polling the API
 */
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { sendJson, statusText, trackResponse, type ResponseState } from '../core/http.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { toJson } from './lineage.js';
import type { LineageStore, ListQuery } from './lineage-store.js';
import { contentSecurityPolicy, renderPage } from './page.js';
import { parseImportQuery, parseListQuery, parseRequestId, type QueryProblem } from './query.js';

export interface RouteDeps {
  store: LineageStore;
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

function sendHtml(state: ResponseState, status: number, html: string): void {
  if (state.aborted || state.done) return;
  state.done = true;
  state.res.cork(() => {
    state.res.writeStatus(statusText[status] ?? String(status));
    state.res.writeHeader('content-type', 'text/html; charset=utf-8');
    state.res.writeHeader('content-security-policy', contentSecurityPolicy);
    state.res.writeHeader('x-content-type-options', 'nosniff');
    state.res.writeHeader('referrer-policy', 'no-referrer');
    state.res.writeHeader('cache-control', 'no-store');
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

export function registerRoutes(app: TemplatedApp, deps: RouteDeps): void {
  const { store, logger } = deps;

  app.get('/imports/:request_id', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    const parsed = parseRequestId(req.getParameter(0) ?? '');
    if (!parsed.ok) return badRequest(state, parsed.problem);
    const requestId = parsed.value;
    const query = parseImportQuery(req.getQuery() ?? '');
    if (!query.ok) return badRequest(state, query.problem);
    const { tenant } = query.value;
    store.find(requestId, tenant).then(
      (found) => {
        const [only] = found;
        if (only === undefined) {
          const of = tenant === undefined ? '' : ` of tenant ${tenant}`;
          sendJson(state, 404, { error: { code: 'IMPORT_NOT_FOUND', message: `no import ${requestId}${of} is known`, request_id: requestId } }, noStore);
        } else if (found.length > 1) {
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
        } else {
          sendJson(state, 200, toJson(only.lineage, only.updatedAt), noStore);
        }
      },
      (error: unknown) => unavailable(state, logger, error),
    );
  });

  app.get('/imports', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    const parsed = parseListQuery(req.getQuery() ?? '');
    if (!parsed.ok) return badRequest(state, parsed.problem);
    store.list(parsed.value).then(
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
    store.list(parsed.value).then(
      (found) => sendHtml(state, 200, renderPage(found.map((item) => toJson(item.lineage, item.updatedAt)), parsed.value)),
      (error: unknown) => {
        logger.warn({ err: error }, 'reading the lineage for the page failed');
        sendHtml(state, 503, renderPage([], parsed.value, { error: 'The lineage store did not answer; retrying.' }));
      },
    );
  });
}
