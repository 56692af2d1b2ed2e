import t from 'tap';
import { cameOverHttps, cookieValue, crossSiteRefusal, MonitoringAccess, returnPath, rootOf, scopeTenant, sessionCookie, tokenCookie } from './access.js';

t.test('without tokens everyone sees everything; with tokens each token is a viewer', async (t) => {
  const open = new MonitoringAccess({}, undefined);
  t.equal(open.required, false);
  t.same(open.viewerOf(undefined, undefined), { kind: 'everyone' });

  const access = new MonitoringAccess({ acme: 'acme-token-1', globex: 'globex-token-2' }, 'operator-token-3');
  t.equal(access.required, true);
  t.same(access.viewerOf('Bearer acme-token-1', undefined), { kind: 'tenant', tenant: 'acme' });
  t.same(access.viewerOf(undefined, `other=1; ${tokenCookie}=globex-token-2`), { kind: 'tenant', tenant: 'globex' }, 'the sign-in cookie');
  t.same(access.viewerOf('bearer operator-token-3', undefined), { kind: 'operator' });
  t.equal(access.viewerOf('Bearer wrong', undefined), undefined);
  t.equal(access.viewerOf('Basic YWNtZTphY21lLXRva2VuLTE=', undefined), undefined, 'only bearer tokens');
  t.equal(access.viewerOf(undefined, undefined), undefined);
  t.equal(access.viewerOfToken(''), undefined);
  t.same(new MonitoringAccess({}, 'op').viewerOfToken('op'), { kind: 'operator' }, 'an operator token alone turns tokens on');
});

t.test('a tenant viewer is held to its tenant; asking for another is "other"', async (t) => {
  t.same(scopeTenant({ kind: 'tenant', tenant: 'acme' }, undefined), { tenant: 'acme' });
  t.same(scopeTenant({ kind: 'tenant', tenant: 'acme' }, 'acme'), { tenant: 'acme' });
  t.equal(scopeTenant({ kind: 'tenant', tenant: 'acme' }, 'globex'), 'other');
  t.same(scopeTenant({ kind: 'operator' }, 'globex'), { tenant: 'globex' });
  t.same(scopeTenant({ kind: 'everyone' }, undefined), { tenant: undefined });
});

t.test('cookie values', async (t) => {
  t.equal(cookieValue('a=1; b=x%20y', 'b'), 'x y');
  t.equal(cookieValue('ab=1', 'a'), undefined);
  t.equal(cookieValue('a=%E0%A4%A', 'a'), undefined, 'bad encoding is no cookie');
  t.equal(cookieValue(undefined, 'a'), undefined);
});

t.test('cross-site POSTs: Sec-Fetch-Site first, else Origin against Host; neither is no browser form', async (t) => {
  const host = 'monitoring.example:3002';
  t.equal(crossSiteRefusal({ secFetchSite: 'same-origin', origin: 'https://evil.example', host }), undefined, 'Sec-Fetch-Site decides');
  t.equal(crossSiteRefusal({ secFetchSite: 'none', origin: undefined, host }), undefined);
  t.match(crossSiteRefusal({ secFetchSite: 'cross-site', origin: undefined, host }), /cross-site/);
  t.match(crossSiteRefusal({ secFetchSite: 'same-site', origin: `http://${host}`, host }), /same-site/);
  t.equal(crossSiteRefusal({ secFetchSite: undefined, origin: `http://${host}`, host }), undefined);
  t.match(crossSiteRefusal({ secFetchSite: undefined, origin: 'http://evil.example', host }), /not this site/);
  t.match(crossSiteRefusal({ secFetchSite: undefined, origin: 'null', host }), /not this site/);
  t.equal(crossSiteRefusal({ secFetchSite: undefined, origin: undefined, host }), undefined, 'curl, the CLI');
});

t.test('the sign-in cookie, HTTPS behind a proxy, where sign-in returns to', async (t) => {
  t.equal(sessionCookie('a b', false), `${tokenCookie}=a%20b; Path=/; HttpOnly; SameSite=Strict`);
  t.equal(sessionCookie('x', true), `${tokenCookie}=x; Path=/; HttpOnly; SameSite=Strict; Secure`);
  t.equal(sessionCookie('', true), `${tokenCookie}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict; Secure`);
  t.equal(cameOverHttps('https', undefined), true);
  t.equal(cameOverHttps('https, http', undefined), true);
  t.equal(cameOverHttps('http', undefined), false);
  t.equal(cameOverHttps(undefined, 'for=1.2.3.4;proto=https;host=x'), true);
  t.equal(cameOverHttps(undefined, undefined), false);
  t.equal(returnPath('imports/req-1?tenant=acme'), 'imports/req-1?tenant=acme');
  for (const bad of ['/imports', '//evil.example', 'https://evil.example', 'javascript:alert(1)', 'a\\b', 'imports/x\n', null, undefined]) {
    t.equal(returnPath(bad), '', JSON.stringify(bad));
  }
  t.equal(rootOf('/'), './');
  t.equal(rootOf('/imports/req-1'), '../');
  t.equal(rootOf('/imports/req-1/errors'), '../../');
});
