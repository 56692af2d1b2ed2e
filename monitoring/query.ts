/**
 * Validation of the lineage API's inputs: pure functions from the raw query string or path
 * parameter to a typed query or a 400 answer's error.
 */
import { isValidRequestId, isValidTenant } from '../core/request-id.js';
import { chooseFormat, decodeCursor, reportFormats, type Cursor, type ReportFormat } from './error-report.js';
import { importStatuses, type ImportStatus } from './lineage.js';
import type { ListQuery } from './lineage-store.js';

export const defaultListLimit = 50;
export const maxListLimit = 500;
export const defaultErrorsLimit = 100;
export const maxErrorsLimit = 1000;

export interface QueryProblem {
  code:
    | 'UNKNOWN_PARAMETER'
    | 'REPEATED_PARAMETER'
    | 'INVALID_TENANT'
    | 'INVALID_STATUS'
    | 'INVALID_LIMIT'
    | 'INVALID_QUERY'
    | 'INVALID_REQUEST_ID'
    | 'INVALID_CURSOR'
    | 'INVALID_FORMAT';
  message: string;
  parameter?: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; problem: QueryProblem };

const listParameters = ['tenant', 'status', 'limit'] as const;

/** The query string's parameters: each known, each at most once. */
function parseParameters(queryString: string, allowed: readonly string[]): Parsed<URLSearchParams> {
  let params: URLSearchParams;
  try {
    // decodeURIComponent first: URLSearchParams would silently turn bad escapes into U+FFFD.
    for (const part of queryString.split('&')) decodeURIComponent(part.replaceAll('+', ' '));
    params = new URLSearchParams(queryString);
  } catch {
    return { ok: false, problem: { code: 'INVALID_QUERY', message: 'the query string is not valid percent-encoding' } };
  }
  const seen = new Set<string>();
  for (const name of params.keys()) {
    if (!allowed.includes(name)) {
      return {
        ok: false,
        problem: { code: 'UNKNOWN_PARAMETER', message: `unknown parameter ${JSON.stringify(name)}; known: ${allowed.join(', ')}`, parameter: name },
      };
    }
    if (seen.has(name)) {
      return { ok: false, problem: { code: 'REPEATED_PARAMETER', message: `parameter ${name} given more than once`, parameter: name } };
    }
    seen.add(name);
  }
  return { ok: true, value: params };
}

function parseTenant(params: URLSearchParams): Parsed<string | undefined> {
  const tenant = params.get('tenant');
  if (tenant === null) return { ok: true, value: undefined };
  if (!isValidTenant(tenant)) {
    return {
      ok: false,
      problem: { code: 'INVALID_TENANT', message: 'tenant must match [a-z0-9][a-z0-9._-]{0,62} (no "..")', parameter: 'tenant' },
    };
  }
  return { ok: true, value: tenant };
}

/** `tenant=…` of `GET /imports/:request_id` (optional: needed only when two tenants used the id). */
export function parseImportQuery(queryString: string): Parsed<{ tenant?: string }> {
  const parsed = parseParameters(queryString, ['tenant']);
  if (!parsed.ok) return parsed;
  const tenant = parseTenant(parsed.value);
  if (!tenant.ok) return tenant;
  return { ok: true, value: tenant.value === undefined ? {} : { tenant: tenant.value } };
}

/** `tenant=…&status=…&limit=…` (each optional, each at most once, nothing else). */
export function parseListQuery(queryString: string, defaultLimit = defaultListLimit): Parsed<ListQuery> {
  const parsed = parseParameters(queryString, listParameters);
  if (!parsed.ok) return parsed;
  const params = parsed.value;
  const query: ListQuery = { limit: defaultLimit };
  const tenant = parseTenant(params);
  if (!tenant.ok) return tenant;
  if (tenant.value !== undefined) query.tenant = tenant.value;
  const status = params.get('status');
  if (status !== null) {
    if (!(importStatuses as readonly string[]).includes(status)) {
      return {
        ok: false,
        problem: { code: 'INVALID_STATUS', message: `status must be one of ${importStatuses.join(', ')}`, parameter: 'status' },
      };
    }
    query.status = status as ImportStatus;
  }
  const limit = parseLimit(params, defaultLimit, maxListLimit);
  if (!limit.ok) return limit;
  query.limit = limit.value;
  return { ok: true, value: query };
}

function parseLimit(params: URLSearchParams, fallback: number, max: number): Parsed<number> {
  const limit = params.get('limit');
  if (limit === null) return { ok: true, value: fallback };
  if (!/^\d{1,4}$/.test(limit) || Number(limit) < 1 || Number(limit) > max) {
    return { ok: false, problem: { code: 'INVALID_LIMIT', message: `limit must be an integer from 1 to ${max}`, parameter: 'limit' } };
  }
  return { ok: true, value: Number(limit) };
}

export interface ErrorsQuery {
  tenant?: string;
  format: ReportFormat;
  /** A JSON page's size; a download (ndjson, csv) has every entry. */
  limit: number;
  after?: Cursor;
}

/** `tenant=…&format=json|ndjson|csv&limit=…&after=<cursor>` of `GET /imports/:request_id/errors`; Accept picks the format too. */
export function parseErrorsQuery(queryString: string, accept?: string): Parsed<ErrorsQuery> {
  const parsed = parseParameters(queryString, ['tenant', 'format', 'limit', 'after']);
  if (!parsed.ok) return parsed;
  const params = parsed.value;
  const tenant = parseTenant(params);
  if (!tenant.ok) return tenant;
  const format = chooseFormat(params.get('format') ?? undefined, accept);
  if (format === undefined) {
    return { ok: false, problem: { code: 'INVALID_FORMAT', message: `format must be one of ${reportFormats.join(', ')}`, parameter: 'format' } };
  }
  const limit = parseLimit(params, defaultErrorsLimit, maxErrorsLimit);
  if (!limit.ok) return limit;
  const query: ErrorsQuery = { format, limit: limit.value };
  if (tenant.value !== undefined) query.tenant = tenant.value;
  const after = params.get('after');
  if (after !== null) {
    const cursor = decodeCursor(after);
    if (cursor === undefined) {
      return { ok: false, problem: { code: 'INVALID_CURSOR', message: 'after must be the next cursor of an earlier page', parameter: 'after' } };
    }
    query.after = cursor;
  }
  return { ok: true, value: query };
}

/** The `:request_id` path segment, as the ingress allows it (letters, digits, '-', '_'; 8–128). */
export function parseRequestId(raw: string): Parsed<string> {
  if (!isValidRequestId(raw)) {
    return {
      ok: false,
      problem: { code: 'INVALID_REQUEST_ID', message: 'a request id is 8 to 128 letters, digits, "-" or "_"', parameter: 'request_id' },
    };
  }
  return { ok: true, value: raw };
}
