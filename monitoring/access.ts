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

/** The headers of a POST that say where it came from. */
export interface RequestOrigin {
  secFetchSite: string | undefined;
  origin: string | undefined;
  /** Host, or the X-Forwarded-Host a proxy in front sets. */
  host: string | undefined;
}

/**
 * Why a POST is refused as cross-site, or undefined. A browser says where a request comes from
 * in Sec-Fetch-Site (same-origin, or none: typed in, a bookmark); an older one only in Origin,
 * which must then name this host. A request with neither is no browser's form (curl, the CLI):
 * no cookie of a victim rides along on it, so it is let through.
 */
export function crossSiteRefusal(request: RequestOrigin): string | undefined {
  const site = request.secFetchSite?.trim().toLowerCase();
  if (site !== undefined && site !== '') {
    return site === 'same-origin' || site === 'none' ? undefined : `a ${site} request (Sec-Fetch-Site) may not post here`;
  }
  if (request.origin === undefined || request.origin === '') return undefined;
  let originHost: string;
  try {
    originHost = new URL(request.origin).host;
  } catch {
    return `Origin ${request.origin} is not this site`;
  }
  return originHost !== '' && originHost.toLowerCase() === (request.host ?? '').trim().toLowerCase() ? undefined : `Origin ${request.origin} is not this site`;
}

/** Whether the request reached us over HTTPS: a TLS-terminating proxy says so in X-Forwarded-Proto or Forwarded. */
export function cameOverHttps(forwardedProto: string | undefined, forwarded: string | undefined): boolean {
  if (forwardedProto?.split(',')[0]?.trim().toLowerCase() === 'https') return true;
  return /(?:^|[;,\s])proto="?https"?(?:[;,\s]|$)/i.test(forwarded?.split(',')[0] ?? '');
}

/** The Set-Cookie value of the sign-in cookie (empty token: the cookie is removed). */
export function sessionCookie(token: string, secure: boolean): string {
  const value = token === '' ? `${tokenCookie}=; Max-Age=0` : `${tokenCookie}=${encodeURIComponent(token)}`;
  return `${value}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

/**
 * Where the sign-in form sends the browser back to: a path of this site relative to its root
 * (`imports/<id>?tenant=t`), so it works behind a path prefix; anything else (another host,
 * `//evil`, a scheme) is the list page.
 */
export function returnPath(asked: string | null | undefined): string {
  if (asked === null || asked === undefined) return '';
  if (!/^[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*$/.test(asked) || asked.startsWith('/') || asked.includes('//') || /^[^/?]*:/.test(asked)) return '';
  return asked;
}

/** The relative way from a request path to the site's root: `./` for `/`, `../` for `/imports/x`. */
export function rootOf(path: string): string {
  const depth = path.split('/').length - 2;
  return depth <= 0 ? './' : '../'.repeat(depth);
}
