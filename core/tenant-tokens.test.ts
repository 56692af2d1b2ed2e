import t from 'tap';
import { bearerToken, parseTenantTokens, sameToken, TenantTokens } from './tenant-tokens.js';

t.test('without tokens every request is allowed', async (t) => {
  const tokens = new TenantTokens({});
  t.equal(tokens.enabled, false);
  t.ok(tokens.allows('acme', undefined));
});

t.test('with tokens only the tenant’s own bearer token is allowed', async (t) => {
  const tokens = new TenantTokens({ acme: 's3cret', globex: 'other' });
  t.ok(tokens.allows('acme', 'Bearer s3cret'));
  t.ok(tokens.allows('acme', 'bearer s3cret'));
  t.notOk(tokens.allows('acme', undefined), 'missing header');
  t.notOk(tokens.allows('acme', 'Bearer wrong'), 'wrong token');
  t.notOk(tokens.allows('acme', 'Bearer other'), 'another tenant’s token');
  t.notOk(tokens.allows('initech', 'Bearer s3cret'), 'unknown tenant');
  t.notOk(tokens.allows('acme', 'Basic czNjcmV0'), 'other scheme');
  t.notOk(tokens.allows('acme', 's3cret'), 'no scheme');
});

t.test('token lists parse from env text or JSON', async (t) => {
  t.same(parseTenantTokens('acme:a1, globex:g:2'), { acme: 'a1', globex: 'g:2' });
  t.same(parseTenantTokens('{"acme":"a1"}'), { acme: 'a1' });
  t.same(parseTenantTokens('  '), {});
  t.throws(() => parseTenantTokens('acme'), /tenant:token/);
  t.throws(() => parseTenantTokens('{"acme":""}'), /non-empty/);
});

t.test('tenantOf: the tenant a token belongs to; bearer tokens and equal tokens', async (t) => {
  const tokens = new TenantTokens({ acme: 'a-1', globex: 'g-2' });
  t.equal(tokens.tenantOf('g-2'), 'globex');
  t.equal(tokens.tenantOf('nope'), undefined);
  t.equal(tokens.tenantOf(''), undefined);
  t.equal(bearerToken('Bearer abc '), 'abc');
  t.equal(bearerToken('Token abc'), undefined);
  t.ok(sameToken('x', 'x'));
  t.notOk(sameToken('x', 'xy'));
});
