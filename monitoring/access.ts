/**
 * Who may see what. Without tokens configured the monitoring is open (and listens on 127.0.0.1
 * by default). With tenant tokens or an operator token configured, every lineage route asks for
 * one: a tenant's token sees only that tenant's imports, the operator's sees all. A browser sends
 * its token as a cookie set by the login form; an API client as `Authorization: Bearer`.
 */
import { bearerToken, sameToken, TenantTokens } from '../core/tenant-tokens.js';

export type Viewer = { kind: 'everyone' } | { kind: 'operator' } | { kind: 'tenant'; tenant: string };

export const tokenCookie = 'etl_monitoring_token';

export class MonitoringAccess {
  readonly #tenants: TenantTokens;
  readonly #operator: string | undefined;

  constructor(tenantTokens: Record<string, string>, operatorToken: string | undefined) {
    this.#tenants = new TenantTokens(tenantTokens);
    this.#operator = operatorToken;
  }

  get required(): boolean {
    return this.#tenants.enabled || this.#operator !== undefined;
  }

  /** The viewer a token makes, or undefined when it is no token of ours. */
  viewerOfToken(token: string | undefined): Viewer | undefined {
    if (!this.required) return { kind: 'everyone' };
    if (token === undefined || token === '') return undefined;
    // Both compared every time: timing does not say which kind of token it was.
    const operator = this.#operator !== undefined && sameToken(token, this.#operator);
    const tenant = this.#tenants.tenantOf(token);
    if (operator) return { kind: 'operator' };
    return tenant === undefined ? undefined : { kind: 'tenant', tenant };
  }

  /** The viewer of a request: its bearer token, else its token cookie. */
  viewerOf(authorization: string | undefined, cookie: string | undefined): Viewer | undefined {
    return this.viewerOfToken(bearerToken(authorization) ?? cookieValue(cookie, tokenCookie));
  }
}

/** A cookie's value from a Cookie header (undefined when absent or badly encoded). */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * The tenant a viewer's question is about. A tenant viewer is held to its own tenant whatever it
 * asks; asking for another one is answered as if that tenant had nothing (`other`), so an id
 * never tells whether another tenant has it.
 */
export function scopeTenant(viewer: Viewer, asked: string | undefined): { tenant: string | undefined } | 'other' {
  if (viewer.kind !== 'tenant') return { tenant: asked };
  if (asked !== undefined && asked !== viewer.tenant) return 'other';
  return { tenant: viewer.tenant };
}
