import { createHash, timingSafeEqual } from 'node:crypto';
import type { EnvReader } from './env.js';

/**
 * Optional per-tenant bearer tokens. Tokens are compared as SHA-256 digests with
 * timingSafeEqual: constant time, and equal-length inputs whatever the token lengths.
 */
export class TenantTokens {
  readonly #digests = new Map<string, Buffer>();

  constructor(tokens: Record<string, string>) {
    for (const [tenant, token] of Object.entries(tokens)) this.#digests.set(tenant, digest(token));
  }

  get enabled(): boolean {
    return this.#digests.size > 0;
  }

  /** True when auth is off, or the Authorization header carries the tenant's token. */
  allows(tenant: string, authorization: string | undefined): boolean {
    if (!this.enabled) return true;
    const expected = this.#digests.get(tenant);
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    // Compare even when the tenant is unknown, so timing does not reveal which tenants exist.
    const given = digest(match?.[1] ?? '');
    const equal = timingSafeEqual(given, expected ?? digest('\u0000no-such-tenant'));
    return equal && expected !== undefined && match !== null;
  }

  /** The tenant whose token `token` is, or undefined; every tenant's digest is compared, so timing says nothing. */
  tenantOf(token: string): string | undefined {
    const given = digest(token);
    let found: string | undefined;
    for (const [tenant, expected] of this.#digests) {
      if (timingSafeEqual(given, expected) && token !== '') found = tenant;
    }
    return found;
  }
}

/** The bearer token of an Authorization header, or undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
}

/** Whether `given` is `expected`, compared in constant time. */
export function sameToken(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** The value of the tenant tokens setting `name` (`reader.optional(name)`); a bad value is a start-up problem naming it. */
export function tenantTokensSetting(reader: EnvReader, name: string, text: string | undefined): Record<string, string> {
  if (text === undefined) return {};
  try {
    return parseTenantTokens(text);
  } catch (error) {
    reader.problems.push(`${name}: ${(error as Error).message}`);
    return {};
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Parses `tenant:token,tenant2:token2` or a JSON object `{ "tenant": "token" }`. */
export function parseTenantTokens(text: string): Record<string, string> {
  const trimmed = text.trim();
  if (trimmed === '') return {};
  if (trimmed.startsWith('{')) {
    const parsed = JSON.parse(trimmed) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('expected a JSON object');
    const tokens: Record<string, string> = {};
    for (const [tenant, token] of Object.entries(parsed)) {
      if (typeof token !== 'string' || token === '') throw new Error(`token of ${tenant} must be a non-empty string`);
      tokens[tenant] = token;
    }
    return tokens;
  }
  const tokens: Record<string, string> = {};
  for (const entry of trimmed
    .split(/[,\n]/)
    .map((item) => item.trim())
    .filter(Boolean)) {
    const colon = entry.indexOf(':');
    if (colon <= 0 || colon === entry.length - 1) throw new Error(`expected tenant:token, got an entry without both`);
    tokens[entry.slice(0, colon)] = entry.slice(colon + 1);
  }
  return tokens;
}
