import t from 'tap';
import { dropEmptyParams } from './http-routes.js';
import { maxListLimit, parseErrorsQuery, parseListQuery, parseRequestId } from './query.js';

t.test('list query: defaults and valid filters', async (t) => {
  t.same(parseListQuery(''), { ok: true, value: { limit: 50 } });
  t.same(parseListQuery('', 20), { ok: true, value: { limit: 20 } });
  t.same(parseListQuery('tenant=acme&status=complete&limit=10'), { ok: true, value: { tenant: 'acme', status: 'complete', limit: 10 } });
  t.same(parseListQuery('limit=1'), { ok: true, value: { limit: 1 } });
  t.same(parseListQuery(`limit=${maxListLimit}`), { ok: true, value: { limit: maxListLimit } });
  t.same(parseListQuery('tenant=a.b_c-d'), { ok: true, value: { tenant: 'a.b_c-d', limit: 50 } });
});

t.test('list query: every bad parameter is a 400 problem naming it', async (t) => {
  const cases: Array<[string, string, string | undefined]> = [
    ['tenant=', 'INVALID_TENANT', 'tenant'],
    ['tenant=ACME', 'INVALID_TENANT', 'tenant'],
    ['tenant=a..b', 'INVALID_TENANT', 'tenant'],
    ['tenant=%3Cscript%3E', 'INVALID_TENANT', 'tenant'],
    ['status=done', 'INVALID_STATUS', 'status'],
    ['status=', 'INVALID_STATUS', 'status'],
    ['limit=0', 'INVALID_LIMIT', 'limit'],
    ['limit=-1', 'INVALID_LIMIT', 'limit'],
    ['limit=1.5', 'INVALID_LIMIT', 'limit'],
    ['limit=abc', 'INVALID_LIMIT', 'limit'],
    [`limit=${maxListLimit + 1}`, 'INVALID_LIMIT', 'limit'],
    ['limit=99999999999999999999', 'INVALID_LIMIT', 'limit'],
    ['tenant=a&tenant=b', 'REPEATED_PARAMETER', 'tenant'],
    ['order=asc', 'UNKNOWN_PARAMETER', 'order'],
    ['tenant=%E0%A4%A', 'INVALID_QUERY', undefined],
  ];
  for (const [query, code, parameter] of cases) {
    const parsed = parseListQuery(query);
    t.equal(parsed.ok, false, query);
    if (!parsed.ok) {
      t.equal(parsed.problem.code, code, `${query}: ${code}`);
      t.equal(parsed.problem.parameter, parameter);
      t.type(parsed.problem.message, 'string');
    }
  }
});

t.test('request ids: as the ingress allows them', async (t) => {
  t.same(parseRequestId('01a21ed9-5fb8-75cc-a58e-667e8b77ec36'), { ok: true, value: '01a21ed9-5fb8-75cc-a58e-667e8b77ec36' });
  for (const bad of ['', 'short', '../../etc/passwd', 'a'.repeat(129), 'abc%20defgh', 'with space']) {
    const parsed = parseRequestId(bad);
    t.equal(parsed.ok, false, JSON.stringify(bad));
    if (!parsed.ok) t.equal(parsed.problem.code, 'INVALID_REQUEST_ID');
  }
});

t.test('the page form sends empty fields, which mean "any"', async (t) => {
  t.equal(dropEmptyParams('tenant=&status='), '');
  t.equal(dropEmptyParams('tenant=acme&status='), 'tenant=acme');
  t.equal(dropEmptyParams('&status=failed&'), 'status=failed');
});

t.test('errors query: format from ?format= or Accept, a bounded page, a cursor from an earlier page', async (t) => {
  t.same(parseErrorsQuery(''), { ok: true, value: { format: 'json', limit: 100 } });
  t.same(parseErrorsQuery('', 'text/csv'), { ok: true, value: { format: 'csv', limit: 100 } });
  t.same(parseErrorsQuery('format=ndjson&tenant=acme&limit=1000&after=-1.17', 'text/csv'), {
    ok: true,
    value: { format: 'ndjson', limit: 1000, tenant: 'acme', after: { recordIndex: -1, id: '17' } },
  });
  for (const [query, code] of [
    ['format=xml', 'INVALID_FORMAT'],
    ['limit=1001', 'INVALID_LIMIT'],
    ['limit=0', 'INVALID_LIMIT'],
    ['after=7', 'INVALID_CURSOR'],
    ['tenant=A', 'INVALID_TENANT'],
    ['page=2', 'UNKNOWN_PARAMETER'],
    ['format=csv&format=json', 'REPEATED_PARAMETER'],
  ] as const) {
    const parsed = parseErrorsQuery(query);
    t.equal(parsed.ok ? undefined : parsed.problem.code, code, query);
  }
});
