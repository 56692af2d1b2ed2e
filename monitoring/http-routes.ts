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
import { cameOverHttps, crossSiteRefusal, returnPath, rootOf, scopeTenant, sessionCookie, type MonitoringAccess, type Viewer } from './access.js';
import { pageErrorLimit, renderImportPage, renderNotKnownPage, wantsHtml } from './import-page.js';
import { renderRunPage, runIdOfReplay } from './run-page.js';
import { newRunId, planFiles, replayItemOf, ReplayError, runReplay, type ReplayDeps } from './replay.js';
import type { ReplayRun } from './replay-store.js';
import { isValidTenant } from '../core/request-id.js';
import { contentSecurityPolicy, renderLoginPage, renderPage } from './page.js';
import { parseErrorsQuery, parseImportQuery, parseListQuery, parseRequestId, type QueryProblem } from './query.js';

/** Entries read from the database per query while a download streams. */
const downloadPageSize = 500;

export interface RouteDeps {
  store: LineageStore;
  access: MonitoringAccess;
  replay: {
    deps: ReplayDeps;
    bucket: string;
    /** Stops runs between two files (the monitoring is stopping). */
    signal: AbortSignal;
    /** Keeps a background run until it ends. */
    track(run: Promise<unknown>): void;
  };
  logger: Logger;
  /** Imports the page lists when no limit is asked for. */
  pageLimit: number;
  /** The sign-in cookie always carries Secure (MONITORING_COOKIE_SECURE); else only over HTTPS. */
  cookieSecure: boolean;
}

const noStore = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };

function badRequest(state: ResponseState, problem: QueryProblem): void {
  sendJson(state, 400, { error: problem }, noStore);
}

function unavailable(state: ResponseState, logger: Logger, error: unknown): void {
  logger.warn({ err: error }, 'reading the lineage failed');
  sendJson(
    state,
    503,
    { error: { code: 'LINEAGE_UNAVAILABLE', message: `the lineage store did not answer: ${errorMessage(error)}` } },
    {
      ...noStore,
      'retry-after': '1',
    },
  );
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

/** 303 to `location`, with a cookie to set. */
function redirect(state: ResponseState, location: string, cookie?: string): void {
  if (state.aborted || state.done) return;
  state.done = true;
  state.res.cork(() => {
    state.res.writeStatus('303 See Other');
    state.res.writeHeader('location', location);
    if (cookie !== undefined) state.res.writeHeader('set-cookie', cookie);
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
      const path = req.getUrl();
      const query = req.getQuery() ?? '';
      sendHtml(state, 401, renderLoginPage({ root: rootOf(path), returnTo: returnPath(`${path.slice(1)}${query === '' ? '' : `?${query}`}`) }));
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

  function notFound(state: ResponseState, requestId: string, tenant: string | undefined, html = false): void {
    if (html) return sendHtml(state, 404, renderNotKnownPage(requestId, tenant));
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
  async function findImport(state: ResponseState, requestId: string, tenant: string | undefined, html = false): Promise<StoredImport | undefined> {
    const found = await store.find(requestId, tenant);
    const [only] = found;
    if (only === undefined) {
      notFound(state, requestId, tenant, html);
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

  /**
   * The import a request names, as its viewer may see it: the request id and the tenant to look
   * it up under; undefined once the request was answered (400, 401, or 404 for another tenant's).
   */
  function askedImport(
    state: ResponseState,
    req: HttpRequest,
    askedTenant: string | undefined,
    html: boolean,
  ): { requestId: string; tenant: string | undefined } | undefined {
    const parsed = parseRequestId(req.getParameter(0) ?? '');
    if (!parsed.ok) {
      badRequest(state, parsed.problem);
      return undefined;
    }
    const viewer = viewerOrRefuse(state, req, html);
    if (viewer === undefined) return undefined;
    const scope = scopeTenant(viewer, askedTenant);
    if (scope === 'other') {
      notFound(state, parsed.value, askedTenant, html);
      return undefined;
    }
    return { requestId: parsed.value, tenant: scope.tenant };
  }

  app.get('/imports/:request_id', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    const query = parseImportQuery(req.getQuery() ?? '');
    if (!query.ok) return badRequest(state, query.problem);
    const html = wantsHtml(header(req, 'accept'));
    const asked = askedImport(state, req, query.value.tenant, html);
    if (asked === undefined) return;
    (async () => {
      const found = await findImport(state, asked.requestId, asked.tenant, html);
      if (found === undefined) return;
      const item = toJson(found.lineage, found.updatedAt);
      if (!html) return sendJson(state, 200, item, { ...noStore, vary: 'accept' });
      const { tenant, requestId } = found.lineage;
      const runId = runIdOfReplay(requestId, found.lineage.replayOf);
      const [counts, first, run] = await Promise.all([
        store.errorCounts(tenant, requestId),
        store.errorPage({ tenant, requestId, limit: pageErrorLimit }),
        runId === undefined ? undefined : runs.progress(runId, tenant),
      ]);
      sendHtml(state, 200, renderImportPage(item, { counts, first: first.map((entry) => toEntryJson(entry.entry)) }, run));
    })().catch((error: unknown) => unavailable(state, logger, error));
  });

  app.get('/imports/:request_id/errors', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    const query = parseErrorsQuery(req.getQuery() ?? '', header(req, 'accept'));
    if (!query.ok) return badRequest(state, query.problem);
    const asked = askedImport(state, req, query.value.tenant, false);
    if (asked === undefined) return;
    const { format, limit, after } = query.value;
    (async () => {
      const found = await findImport(state, asked.requestId, asked.tenant);
      if (found === undefined) return;
      const { tenant, requestId } = found.lineage;
      if (format === 'json') {
        const [counts, page] = await Promise.all([store.errorCounts(tenant, requestId), store.errorPage({ tenant, requestId, after, limit: limit + 1 })]);
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
      (found) =>
        sendHtml(
          state,
          200,
          renderPage(
            found.map((item) => toJson(item.lineage, item.updatedAt)),
            parsed.value,
            { signOut },
          ),
        ),
      (error: unknown) => {
        logger.warn({ err: error }, 'reading the lineage for the page failed');
        sendHtml(state, 503, renderPage([], parsed.value, { error: 'The lineage store did not answer; retrying.', signOut }));
      },
    );
  });

  /** Replay runs going on in this process, by tenant and run id, to stop them. */
  const running = new Map<string, AbortController>();
  const runKey = (tenant: string, runId: string) => `${tenant}/${runId}`;
  const { runs } = deps.replay.deps;

  function replayRefused(state: ResponseState, error: unknown): void {
    if (error instanceof ReplayError) {
      sendJson(state, error.status, { error: { code: error.code, message: error.message } }, noStore);
    } else {
      unavailable(state, logger, error);
    }
  }

  function runUnknown(state: ResponseState, runId: string): void {
    sendJson(state, 404, { error: { code: 'REPLAY_RUN_UNKNOWN', message: `no replay run ${runId} is known` } }, noStore);
  }

  /**
   * True once a cross-site POST was refused (403): a page of another site must not make a
   * signed-in browser replay files or sign in with the attacker's token.
   */
  function refusedCrossSite(state: ResponseState, req: HttpRequest): boolean {
    const problem = crossSiteRefusal({
      secFetchSite: header(req, 'sec-fetch-site'),
      origin: header(req, 'origin'),
      host: header(req, 'x-forwarded-host') ?? header(req, 'host'),
    });
    if (problem === undefined) return false;
    logger.info({ problem }, 'a cross-site POST was refused');
    sendJson(state, 403, { error: { code: 'CROSS_SITE_REQUEST', message: `${problem}: the monitoring's forms are posted from its own pages only` } }, noStore, {
      close: true,
    });
    return true;
  }

  /** Runs the run's files in the background, once; the run's files are stored already. */
  function startRun(run: ReplayRun, stop: AbortController): void {
    const key = runKey(run.tenant, run.runId);
    deps.replay.track(
      runReplay(deps.replay.deps, deps.replay.bucket, run.runId, undefined, AbortSignal.any([stop.signal, deps.replay.signal]))
        .catch((error: unknown) => logger.error({ err: error, runId: run.runId, tenant: run.tenant }, 'a replay run stopped'))
        .finally(() => {
          if (running.get(key) === stop) running.delete(key);
        }),
    );
  }

  // One import again: answered once its replay is announced (202), or why it cannot be (404,
  // 409, 410). From the page's button (a form), a 303 to the replay's page.
  app.post('/imports/:request_id/replay', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    if (refusedCrossSite(state, req)) return;
    const query = parseImportQuery(req.getQuery() ?? '');
    if (!query.ok) return badRequest(state, query.problem);
    const fromForm = (header(req, 'content-type') ?? '').startsWith('application/x-www-form-urlencoded');
    const asked = askedImport(state, req, query.value.tenant, false);
    if (asked === undefined) return;
    (async () => {
      await readSmallBody(state, 4096);
      const found = await findImport(state, asked.requestId, asked.tenant);
      if (found === undefined) return;
      const item = replayItemOf(found.lineage);
      if (item === undefined) {
        throw new ReplayError('REPLAY_NOTHING_TO_REPLAY', `import ${asked.requestId} has no stored file (it was refused or is not received yet)`, 409);
      }
      const runId = newRunId();
      const files = planFiles(runId, [item]);
      await runs.createRun({ runId, tenant: item.tenant, since: null, until: null }, files);
      const refusal = files[0]?.refusal;
      if (refusal !== undefined) {
        sendJson(state, 409, { error: { ...refusal, run_id: runId } }, noStore);
        return;
      }
      const [outcome] = await runReplay(deps.replay.deps, deps.replay.bucket, runId);
      if (outcome?.state !== 'emitted') {
        const error = outcome?.error ?? { code: 'REPLAY_FAILED', message: 'the replay did not start', status: 503 };
        sendJson(state, error.status, { error: { code: error.code, message: error.message, run_id: runId } }, noStore);
        return;
      }
      const replayId = outcome.replayRequestId;
      const location = `../${encodeURIComponent(replayId)}?tenant=${encodeURIComponent(item.tenant)}`;
      if (fromForm) return redirect(state, location);
      sendJson(
        state,
        202,
        {
          run_id: runId,
          replay_request_id: replayId,
          replay_of: item.requestId,
          tenant: item.tenant,
          records: outcome.records,
          status_url: `/imports/${replayId}?tenant=${item.tenant}`,
        },
        noStore,
      );
    })().catch((error: unknown) => replayRefused(state, error));
  });

  // Every import of a tenant received in [since, until): the run and its list of files are stored
  // before the answer, then it goes on in the background; GET /replays/<run> shows its progress;
  // ?run=<id> resumes a run with the files it listed when it started.
  app.post('/tenants/:tenant/replay', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    if (refusedCrossSite(state, req)) return;
    const tenant = req.getParameter(0) ?? '';
    const params = new URLSearchParams(req.getQuery() ?? '');
    const viewer = viewerOrRefuse(state, req, false);
    if (viewer === undefined) return;
    if (!isValidTenant(tenant))
      return badRequest(state, { code: 'INVALID_TENANT', message: 'tenant must match [a-z0-9][a-z0-9._-]{0,62}', parameter: 'tenant' });
    if (scopeTenant(viewer, tenant) === 'other') {
      sendJson(state, 404, { error: { code: 'TENANT_NOT_FOUND', message: `no imports of tenant ${tenant} are known` } }, noStore);
      return;
    }
    const time = (name: string): number | undefined | null => {
      const value = params.get(name);
      if (value === null) return undefined;
      const ms = Date.parse(value);
      return Number.isFinite(ms) ? ms : null;
    };
    const [since, until] = [time('since'), time('until')];
    if (since === null || until === null)
      return badRequest(state, { code: 'INVALID_QUERY', message: 'since and until are ISO dates (2026-12-01 or 2026-12-01T10:00:00Z)' });
    const resume = params.get('run');
    if (resume !== null && !/^[a-z0-9]{6,24}$/.test(resume))
      return badRequest(state, { code: 'INVALID_QUERY', message: 'run is a run id an earlier answer gave (6-24 letters and digits)' });
    (async () => {
      await readSmallBody(state, 4096);
      let run: ReplayRun | undefined;
      const stop = new AbortController();
      if (resume !== null) {
        run = await runs.findRun(resume, tenant);
        if (run === undefined) return runUnknown(state, resume);
        const key = runKey(tenant, resume);
        if (running.has(key)) {
          sendJson(state, 409, { error: { code: 'REPLAY_RUNNING', message: `replay run ${resume} is running already` } }, noStore);
          return;
        }
        running.set(key, stop);
        try {
          await runs.retryFailed(resume);
        } catch (error) {
          running.delete(key);
          throw error;
        }
      } else {
        const items = await runs.tenantItems(tenant, since, until);
        if (items.length === 0) {
          sendJson(state, 404, { error: { code: 'TENANT_NOT_FOUND', message: `no imports of tenant ${tenant} in that time` } }, noStore);
          return;
        }
        const runId = newRunId();
        run = { runId, tenant, since: since ?? null, until: until ?? null };
        await runs.createRun(run, planFiles(runId, items));
        running.set(runKey(tenant, runId), stop);
      }
      // The answer describes the run as it starts, not wherever the run has got to meanwhile.
      const progress = await runs.progress(run.runId, tenant);
      startRun(run, stop);
      sendJson(
        state,
        202,
        {
          run_id: run.runId,
          tenant,
          since: run.since === null ? null : new Date(run.since).toISOString(),
          until: run.until === null ? null : new Date(run.until).toISOString(),
          files: progress?.files ?? 0,
          files_done: progress?.files_done ?? 0,
          records_expected: progress?.records_expected ?? 0,
          progress_url: `/replays/${run.runId}?tenant=${tenant}`,
        },
        noStore,
      );
    })().catch((error: unknown) => replayRefused(state, error));
  });

  // Stops a run between two files; POST /tenants/<t>/replay?run=<id> resumes it.
  app.post('/replays/:run_id/stop', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    if (refusedCrossSite(state, req)) return;
    const runId = req.getParameter(0) ?? '';
    const asked = new URLSearchParams(req.getQuery() ?? '').get('tenant') ?? undefined;
    const viewer = viewerOrRefuse(state, req, false);
    if (viewer === undefined) return;
    const scope = scopeTenant(viewer, asked);
    (async () => {
      await readSmallBody(state, 4096);
      const run = scope !== 'other' && /^[a-z0-9]{6,24}$/.test(runId) ? await runs.findRun(runId, scope.tenant) : undefined;
      if (run === undefined) return runUnknown(state, runId);
      const stop = running.get(runKey(run.tenant, runId));
      stop?.abort();
      sendJson(state, 202, { run_id: runId, tenant: run.tenant, stopping: stop !== undefined }, noStore);
    })().catch((error: unknown) => unavailable(state, logger, error));
  });

  app.get('/replays/:run_id', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    const runId = req.getParameter(0) ?? '';
    const asked = new URLSearchParams(req.getQuery() ?? '').get('tenant') ?? undefined;
    const html = wantsHtml(header(req, 'accept'));
    const viewer = viewerOrRefuse(state, req, html);
    if (viewer === undefined) return;
    const scope = scopeTenant(viewer, asked);
    if (scope === 'other' || !/^[a-z0-9]{6,24}$/.test(runId)) return runUnknown(state, runId);
    runs.progress(runId, scope.tenant).then(
      (progress) => {
        if (progress === undefined) return runUnknown(state, runId);
        const answer = { ...progress, running: running.has(runKey(progress.tenant, runId)) };
        if (html) sendHtml(state, 200, renderRunPage(answer));
        else sendJson(state, 200, answer, { ...noStore, vary: 'accept' });
      },
      (error: unknown) => unavailable(state, logger, error),
    );
  });

  app.get('/login', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    sendHtml(state, 200, renderLoginPage({ returnTo: returnPath(new URLSearchParams(req.getQuery() ?? '').get('return')) }));
  });

  /** Whether the sign-in cookie carries Secure: always when so configured, else when the request came over HTTPS. */
  const secureCookie = (req: HttpRequest) => deps.cookieSecure || cameOverHttps(header(req, 'x-forwarded-proto'), header(req, 'forwarded'));

  // The sign-in form: a valid token becomes an HttpOnly, SameSite=Strict cookie the page and its
  // polling send along, and the browser goes back to the page it asked for; a wrong one gets the
  // form again.
  app.post('/login', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    if (refusedCrossSite(state, req)) return;
    const secure = secureCookie(req);
    readSmallBody(state, 4096)
      .then((body) => {
        if (body === undefined) return sendHtml(state, 413, renderLoginPage({ error: 'The form was too large.' }));
        const form = new URLSearchParams(body.toString('utf8'));
        const token = form.get('token') ?? '';
        const back = returnPath(form.get('return'));
        if (!access.required) return redirect(state, `./${back}`, sessionCookie('', secure));
        if (access.viewerOfToken(token) === undefined) {
          logger.info('a sign-in with a token that is not ours');
          return sendHtml(state, 401, renderLoginPage({ error: 'That token is not valid here.', returnTo: back }));
        }
        redirect(state, `./${back}`, sessionCookie(token, secure));
      })
      .catch((error: unknown) => logger.warn({ err: error }, 'answering a sign-in failed'));
  });

  app.post('/logout', (res: HttpResponse, req: HttpRequest) => {
    const state = trackResponse(res);
    if (refusedCrossSite(state, req)) return;
    const secure = secureCookie(req);
    readSmallBody(state, 4096)
      .then(() => redirect(state, 'login', sessionCookie('', secure)))
      .catch((error: unknown) => logger.warn({ err: error }, 'answering a sign-out failed'));
  });
}
