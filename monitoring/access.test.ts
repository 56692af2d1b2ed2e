import t from 'tap';
import { cookieValue, MonitoringAccess, scopeTenant, tokenCookie } from './access.js';

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
