import { readFileSync } from 'node:fs';
import t from 'tap';
import { normalizeRecord, parseCrunchbaseDate, recordIdentity } from './normalize.js';
import { validateRecord } from './validate-record.js';

const dataDir = new URL('../../examples/data/json/', import.meta.url);
const sampleLines = readFileSync(new URL('companies-sample.ndjson', dataDir), 'utf8')
  .split('\n')
  .filter((l) => l !== '');

/** Every key of `value`, at any depth. */
function allKeys(value: unknown, into: Set<string> = new Set()): Set<string> {
  if (Array.isArray(value)) for (const v of value) allKeys(v, into);
  else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      into.add(k);
      allKeys(v, into);
    }
  }
  return into;
}

t.test('$oid becomes its hex string', async (t) => {
  t.same(normalizeRecord({ _id: { $oid: '9c0bf1b76f6ffa6746a21d40' } }), { _id: '9c0bf1b76f6ffa6746a21d40' });
  t.same(normalizeRecord({ $oid: '52CDEF7C4BAB8BD675297D8A' }), '52CDEF7C4BAB8BD675297D8A', 'at the top level too');
  for (const bad of ['xyz', '9c0bf1b76f6ffa6746a21d4', '9c0bf1b76f6ffa6746a21d400', 'zc0bf1b76f6ffa6746a21d40', 12, null]) {
    t.same(normalizeRecord({ _id: { $oid: bad } }), { _id: { $oid: bad } }, `${JSON.stringify(bad)} is kept wrapped`);
  }
});

t.test('$date with an ISO string becomes an ISO string in UTC with milliseconds', async (t) => {
  const cases: [string, string][] = [
    ['2013-12-08T07:15:44.000Z', '2013-12-08T07:15:44.000Z'],
    ['2013-12-08T07:15:44Z', '2013-12-08T07:15:44.000Z'],
    ['2013-12-08T07:15:44.5Z', '2013-12-08T07:15:44.500Z'],
    ['2013-12-08T07:15:44.123456Z', '2013-12-08T07:15:44.123Z'],
    ['2013-12-08T07:15:44+02:00', '2013-12-08T05:15:44.000Z'],
    ['2013-12-08T07:15:44.000-0530', '2013-12-08T12:45:44.000Z'],
    ['2013-12-08T01:00:00+05:00', '2013-12-07T20:00:00.000Z'],
    ['2013-12-08T07:15:44', '2013-12-08T07:15:44.000Z'],
    ['2013-12-08', '2013-12-08T00:00:00.000Z'],
    ['2012-02-29T00:00:00Z', '2012-02-29T00:00:00.000Z'],
    ['0050-01-01T00:00:00Z', '0050-01-01T00:00:00.000Z'],
  ];
  for (const [input, expected] of cases) {
    t.equal(normalizeRecord({ $date: input }), expected, input);
  }
});

t.test('$date with millis, a number or a $numberLong, becomes an ISO string', async (t) => {
  t.equal(normalizeRecord({ $date: 0 }), '1970-01-01T00:00:00.000Z');
  t.equal(normalizeRecord({ $date: 1386486944000 }), '2013-12-08T07:15:44.000Z');
  t.equal(normalizeRecord({ $date: -86400000 }), '1969-12-31T00:00:00.000Z');
  t.equal(normalizeRecord({ $date: { $numberLong: '1386486944123' } }), '2013-12-08T07:15:44.123Z');
  t.equal(normalizeRecord({ $date: { $numberLong: '-1' } }), '1969-12-31T23:59:59.999Z');
});

t.test('a $date that is not a date is kept unchanged', async (t) => {
  const bad: unknown[] = [
    'yesterday',
    '',
    '2013-02-30T00:00:00Z',
    '2013-02-29',
    '2013-13-01T00:00:00Z',
    '2013-12-08T24:00:00Z',
    '2013-12-08T07:60:00Z',
    '2013-12-08T07:15:60Z',
    '2013-12-08T07:15:44+25:00',
    'Sat Dec 08 07:15:44 UTC 2007',
    '12/08/2013',
    1e20,
    Number.NaN,
    null,
    true,
    { $numberLong: 'abc' },
    { $numberLong: '1', extra: 1 },
    [],
  ];
  for (const value of bad) {
    const result = normalizeRecord({ created_at: { $date: value } });
    t.same(result, { created_at: { $date: value } }, `${JSON.stringify(value)} is kept`);
    t.notMatch(JSON.stringify(result), /Invalid Date/);
  }
});

t.test('$numberLong becomes a number when safe, else its string', async (t) => {
  t.equal(normalizeRecord({ $numberLong: '123' }), 123);
  t.equal(normalizeRecord({ $numberLong: '-42' }), -42);
  t.equal(normalizeRecord({ $numberLong: '9007199254740991' }), 9007199254740991);
  t.equal(normalizeRecord({ $numberLong: '9007199254740993' }), '9007199254740993');
  t.equal(normalizeRecord({ $numberLong: '-9223372036854775808' }), '-9223372036854775808');
  for (const bad of ['12a', '', '1.5', ' 1', 12]) {
    t.same(normalizeRecord({ $numberLong: bad }), { $numberLong: bad }, `${JSON.stringify(bad)} is kept wrapped`);
  }
});

t.test('$numberInt, $numberDouble and $numberDecimal become numbers', async (t) => {
  t.equal(normalizeRecord({ $numberInt: '5' }), 5);
  t.equal(normalizeRecord({ $numberInt: '-2147483648' }), -2147483648);
  t.equal(normalizeRecord({ $numberDouble: '1.5' }), 1.5);
  t.equal(normalizeRecord({ $numberDouble: '-1.0E+10' }), -1e10);
  t.equal(normalizeRecord({ $numberDouble: '5250000.5' }), 5250000.5);
  t.equal(normalizeRecord({ $numberDecimal: '12400000.00' }), 12400000);
  for (const bad of [
    { $numberInt: '5.5' },
    { $numberInt: 'five' },
    { $numberDouble: 'NaN' },
    { $numberDouble: 'Infinity' },
    { $numberDouble: '-Infinity' },
    { $numberDouble: '' },
    { $numberDouble: '0x10' },
    { $numberDouble: 1.5 },
  ]) {
    t.same(normalizeRecord(bad), bad, `${JSON.stringify(bad)} is kept`);
  }
});

t.test('only an object whose only key is the wrapper is unwrapped', async (t) => {
  const value = { $oid: '9c0bf1b76f6ffa6746a21d40', note: 'x' };
  t.same(normalizeRecord(value), value);
  t.same(normalizeRecord({ $date: '2013-12-08T07:15:44Z', by: 'me' }), { $date: '2013-12-08T07:15:44Z', by: 'me' });
  t.same(normalizeRecord({ $binary: { base64: 'AA==', subType: '00' } }), { $binary: { base64: 'AA==', subType: '00' } }, 'unknown wrappers are kept');
  t.same(normalizeRecord({ wrapper: { $oid: 'abc', $date: 1 } }), { wrapper: { $oid: 'abc', $date: 1 } });
  t.same(normalizeRecord({}), {});
});

t.test('Crunchbase date strings in *_at fields become ISO strings', async (t) => {
  const cases: [string, string][] = [
    ['Sat Dec 08 07:15:44 UTC 2007', '2007-12-08T07:15:44.000Z'],
    ['Fri Jun 13 23:59:59 UTC 2008', '2008-06-13T23:59:59.000Z'],
    ['Fri Nov 6 20:10:35 UTC 2011', '2011-11-06T20:10:35.000Z'],
    ['Thu Feb  5 20:10:35 UTC 2008', '2008-02-05T20:10:35.000Z'],
    ['Wed Feb 29 00:00:00 GMT 2012', '2012-02-29T00:00:00.000Z'],
  ];
  for (const [input, expected] of cases) {
    t.same(
      normalizeRecord({ created_at: input, updated_at: input, deleted_at: input }),
      { created_at: expected, updated_at: expected, deleted_at: expected },
      input,
    );
    t.equal(parseCrunchbaseDate(input), expected);
  }
  t.same(
    normalizeRecord({ description: 'Sat Dec 08 07:15:44 UTC 2007', at: 'Sat Dec 08 07:15:44 UTC 2007' }),
    { description: 'Sat Dec 08 07:15:44 UTC 2007', at: 'Sat Dec 08 07:15:44 UTC 2007' },
    'only fields named *_at are dates',
  );
  t.same(
    normalizeRecord({ milestones: [{ stoned_at: 'Sat Dec 08 07:15:44 UTC 2007' }] }),
    { milestones: [{ stoned_at: '2007-12-08T07:15:44.000Z' }] },
    'at any depth',
  );
});

t.test('unparseable *_at strings are kept unchanged', async (t) => {
  const bad = [
    '',
    'yesterday',
    'Sat Dec 08 07:15:44 PST 2007',
    'Sat Dec 8 2007',
    'Sat Feb 30 07:15:44 UTC 2007',
    'Sat Feb 29 07:15:44 UTC 2007',
    'Sat Dec 32 07:15:44 UTC 2007',
    'Sat Dec 08 24:00:00 UTC 2007',
    'Sat Dec 08 07:60:44 UTC 2007',
    'Sat Dex 08 07:15:44 UTC 2007',
    'sat dec 08 07:15:44 utc 2007',
    ' Sat Dec 08 07:15:44 UTC 2007',
    'Sat Dec 08 07:15:44 UTC 2007 ',
    '2007-12-08',
  ];
  for (const value of bad) {
    t.same(normalizeRecord({ created_at: value }), { created_at: value }, JSON.stringify(value));
    t.equal(parseCrunchbaseDate(value), undefined);
  }
  t.same(normalizeRecord({ created_at: 5, updated_at: null }), { created_at: 5, updated_at: null }, 'non-strings are kept');
});

t.test('wrappers nested in arrays and objects are unwrapped', async (t) => {
  const input = {
    _id: { $oid: '52cdef7c4bab8bd675297d8a' },
    number_of_employees: { $numberInt: '45' },
    offices: [
      { city: 'Berlin', latitude: { $numberDouble: '52.52' }, longitude: { $numberDouble: '13.40' } },
      { city: 'Chennai', latitude: null, longitude: null },
    ],
    funding_rounds: [
      {
        raised_amount: { $numberLong: '12400000' },
        raised_currency_code: 'USD',
        investments: [{ financial_org: { _id: { $oid: '52cdef7c4bab8bd675297d8b' }, created_at: { $date: 0 } } }],
      },
    ],
    matrix: [[{ $numberInt: '1' }, [{ $numberInt: '2' }]]],
  };
  const frozen = structuredClone(input);
  t.same(normalizeRecord(input), {
    _id: '52cdef7c4bab8bd675297d8a',
    number_of_employees: 45,
    offices: [
      { city: 'Berlin', latitude: 52.52, longitude: 13.4 },
      { city: 'Chennai', latitude: null, longitude: null },
    ],
    funding_rounds: [
      {
        raised_amount: 12400000,
        raised_currency_code: 'USD',
        investments: [{ financial_org: { _id: '52cdef7c4bab8bd675297d8b', created_at: '1970-01-01T00:00:00.000Z' } }],
      },
    ],
    matrix: [[1, [2]]],
  });
  t.same(input, frozen, 'the input is not modified');
});

t.test('returns a new value and keeps scalars and key order', async (t) => {
  const input = { b: 1, a: [1, 2], c: { d: 'x' } };
  const output = normalizeRecord(input) as typeof input;
  t.not(output, input);
  t.not(output.a, input.a);
  t.not(output.c, input.c);
  t.same(Object.keys(output), ['b', 'a', 'c']);
  for (const scalar of ['s', 1, 0, true, false, null, undefined]) t.equal(normalizeRecord(scalar), scalar);
});

t.test('a "__proto__" key stays an own property and does not change the prototype', async (t) => {
  const input: unknown = JSON.parse('{"__proto__": {"polluted": true}, "name": "x"}');
  const output = normalizeRecord(input) as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(output), Object.prototype);
  t.same(Object.keys(output), ['__proto__', 'name']);
  t.equal(({} as Record<string, unknown>).polluted, undefined);
});

t.test('every record of the sample normalises without wrappers left', async (t) => {
  t.equal(sampleLines.length, 60);
  const invalidLines: number[] = [];
  for (const [i, line] of sampleLines.entries()) {
    const normalized = normalizeRecord(JSON.parse(line));
    const keys = allKeys(normalized);
    t.notOk(
      [...keys].some((k) => k.startsWith('$')),
      `line ${i + 1} has no $-keys left`,
    );
    const record = normalized as Record<string, unknown>;
    t.match(record._id, /^[0-9a-f]{24}$/, `line ${i + 1} _id`);
    t.match(record.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, `line ${i + 1} created_at`);
    t.match(record.updated_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/, `line ${i + 1} updated_at`);
    if (!validateRecord(normalized).valid) invalidLines.push(i + 1);
  }
  // The sample breaks the contract on purpose: a bad email (line 2), founded_year 3012
  // (line 19) and founded_year "nineteen ninety" (line 46).
  t.same(invalidLines, [2, 19, 46], 'the other 57 sample records meet the contract');
});

t.test('c.json normalises to plain JSON', async (t) => {
  const doc = normalizeRecord(JSON.parse(readFileSync(new URL('c.json', dataDir), 'utf8'))) as Record<string, unknown>;
  t.equal(doc._id, '9c0bf1b76f6ffa6746a21d40');
  t.equal(doc.created_at, '2010-05-15T12:45:44.000Z');
  t.equal(doc.updated_at, '2013-12-08T07:15:44.000Z');
  t.notOk([...allKeys(doc)].some((k) => k.startsWith('$')));
});

t.test('recordIdentity gives the permalink of a record', async (t) => {
  t.same(recordIdentity({ permalink: 'datamesh-0' }), { permalink: 'datamesh-0' });
  t.same(recordIdentity({ permalink: 5 }), { permalink: undefined });
  t.same(recordIdentity({}), { permalink: undefined });
  t.same(recordIdentity([{ permalink: 'x' }]), { permalink: undefined });
  t.same(recordIdentity(null), { permalink: undefined });
  t.same(recordIdentity('x'), { permalink: undefined });
});
