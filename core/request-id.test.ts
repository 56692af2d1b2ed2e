import t from 'tap';
import { isValidRequestId, isValidTenant, uuidv7 } from './request-id.js';

t.test('uuidv7 ids have version 7, the RFC variant, and sort by time', async (t) => {
  const first = uuidv7(1_700_000_000_000);
  const second = uuidv7(1_700_000_000_001);
  t.match(first, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.ok(first < second);
  t.equal(parseInt(first.replaceAll('-', '').slice(0, 12), 16), 1_700_000_000_000, 'the timestamp leads');
  t.ok(isValidRequestId(first));
});

t.test('client request ids: safe characters only', async (t) => {
  t.ok(isValidRequestId('retry-1234_abcd'));
  for (const bad of ['short', '../../etc', 'a/b/c/d/e/f', 'has space here', 'dots.are.out', 'x'.repeat(129), 'crlf\r\nheader']) {
    t.notOk(isValidRequestId(bad), JSON.stringify(bad));
  }
});

t.test('tenants: lower-case names that cannot leave their S3 prefix', async (t) => {
  for (const good of ['acme', 'a', 'acme-corp.eu_1', '0day']) t.ok(isValidTenant(good), good);
  for (const bad of ['', 'Acme', '../x', '%2e%2e', 'a/b', '.hidden', '-x', 'a..b', 'x'.repeat(64), 'a b']) {
    t.notOk(isValidTenant(bad), JSON.stringify(bad));
  }
});
