import t from 'tap';
import { companySchema, validateRecord, type Violation } from './validate-record.js';

/** tap's test object, as handed to a t.test callback. */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const base = (): Record<string, unknown> => ({ name: 'Wetpaint', permalink: 'wetpaint' });

/** The violations of a record (empty when it is valid). */
function violationsOf(record: unknown): Violation[] {
  const result = validateRecord(record);
  return result.valid ? [] : result.violations;
}

/**
 * Asserts that setting `field` to each of `good` passes and each of `bad` fails at `path` only
 * (a value can break two constraints of one field, e.g. -0.5 employees: not an integer, < 0).
 */
function checkField(t: TapTest, field: string, good: unknown[], bad: unknown[], path = `/${field}`): void {
  for (const value of good) {
    t.same(violationsOf({ ...base(), [field]: value }), [], `${field} = ${JSON.stringify(value)} is valid`);
  }
  for (const value of bad) {
    const violations = violationsOf({ ...base(), [field]: value });
    t.same(
      [...new Set(violations.map((v) => v.path))],
      [path],
      `${field} = ${JSON.stringify(value)} is invalid at ${path}: ${violations.map((v) => v.message).join('; ')}`,
    );
  }
}

t.test('the schema has an $id, a title and a description', async (t) => {
  t.match(companySchema.$id, /company\.schema\.json$/);
  t.type(companySchema.title, 'string');
  t.type(companySchema.description, 'string');
});

t.test('a minimal record and the sample document c.json are valid', async (t) => {
  t.same(validateRecord(base()), { valid: true });
  const { readFileSync } = await import('node:fs');
  const { normalizeRecord } = await import('./normalize.js');
  const doc: unknown = JSON.parse(readFileSync(new URL('../../examples/data/json/c.json', import.meta.url), 'utf8'));
  t.same(validateRecord(normalizeRecord(doc)), { valid: true });
});

t.test('a record that is not an object is invalid at the root', async (t) => {
  for (const record of [[], [base()], 'wetpaint', '', null, 42, 0, true, undefined]) {
    const violations = violationsOf(record);
    t.same(violations.length, 1, `${JSON.stringify(record)} gives one violation`);
    t.equal(violations[0]?.path, '', 'at the root');
    t.equal(violations[0]?.keyword, 'type');
    t.equal(violations[0]?.message, 'must be object');
  }
});

t.test('name is required and has a non-whitespace character', async (t) => {
  checkField(t, 'name', ['A', ' x ', 'Société Générale', '1'], ['', ' ', '\t\n', 5, null, [], {}]);
  const missing = violationsOf({ permalink: 'x' });
  t.same(missing, [{ path: '/name', keyword: 'required', message: 'must have required property "name"' }]);
  t.match(violationsOf({ ...base(), name: '  ' })[0], { keyword: 'pattern', message: /pattern/ });
});

t.test('permalink is required, 1-255 characters, no whitespace', async (t) => {
  checkField(
    t,
    'permalink',
    ['a', 'x'.repeat(255), 'datamesh-0', 'é-ü'],
    ['', 'x'.repeat(256), 'has space', ' lead', 'trail ', 'tab\there', 'new\nline', 7, null],
  );
  t.same(violationsOf({ name: 'x' }), [{ path: '/permalink', keyword: 'required', message: 'must have required property "permalink"' }]);
  t.match(violationsOf({ ...base(), permalink: '' })[0], { keyword: 'minLength', message: 'must have at least 1 character' });
  t.match(violationsOf({ ...base(), permalink: 'y'.repeat(256) })[0], {
    keyword: 'maxLength',
    message: 'must have at most 255 characters',
  });
});

t.test('founded_year is null or an integer 1800-2100', async (t) => {
  checkField(t, 'founded_year', [null, 1800, 1999, 2100, 2000.0], [1799, 2101, 1999.5, '1999', 'nineteen ninety', -1, true]);
  t.match(violationsOf({ ...base(), founded_year: 1799 })[0], { keyword: 'minimum', message: 'must be >= 1800' });
  t.match(violationsOf({ ...base(), founded_year: 2101 })[0], { keyword: 'maximum', message: 'must be <= 2100' });
  t.match(violationsOf({ ...base(), founded_year: 1999.5 })[0], { keyword: 'type', message: 'must be integer or null' });
  t.same(validateRecord({ name: 'x', permalink: 'y' }), { valid: true }, 'absent is fine');
});

t.test('founded_month is null or an integer 1-12', async (t) => {
  checkField(t, 'founded_month', [null, 1, 6, 12], [0, 13, 6.5, '6', -1]);
});

t.test('founded_day is null or an integer 1-31', async (t) => {
  checkField(t, 'founded_day', [null, 1, 15, 31], [0, 32, 1.5, '1']);
});

t.test('number_of_employees is null or an integer >= 0', async (t) => {
  checkField(t, 'number_of_employees', [null, 0, 1, 45110, 1e9], [-1, -0.5, 2.5, '10', false]);
  t.match(violationsOf({ ...base(), number_of_employees: -1 })[0], { keyword: 'minimum', message: 'must be >= 0' });
  t.same(
    violationsOf({ ...base(), number_of_employees: -0.5 }).map((v) => v.keyword),
    ['type', 'minimum'],
    'two broken constraints of one field are two violations',
  );
});

t.test('email_address is null, empty or a valid email', async (t) => {
  checkField(t, 'email_address', [null, '', 'info@datamesh-0.com', 'first.last+tag@example.co.uk'], ['not-an-email', 'a@', '@b.com', 'a b@c.com', ' ', 5, {}]);
  const [violation] = violationsOf({ ...base(), email_address: 'not-an-email' });
  t.equal(violation?.keyword, 'anyOf', 'the branches of the rule are one violation');
  t.match(violation?.message, /email/);
  t.match(violation?.message, /""/);
  t.match(violationsOf({ ...base(), email_address: 5 })[0], { keyword: 'type', message: 'must be string or null' });
});

t.test('homepage_url and crunchbase_url are null, empty or a URI', async (t) => {
  for (const field of ['homepage_url', 'crunchbase_url']) {
    checkField(
      t,
      field,
      [null, '', 'http://adventdata-2.com', 'https://www.crunchbase.com/company/x?a=1#f', 'ftp://x.org/y'],
      ['adventdata-2.com', 'not a url', 'http://exa mple.com', 3, []],
    );
    t.match(violationsOf({ ...base(), [field]: 'www.x.com' })[0]?.message, /uri/);
  }
});

t.test('offices[].latitude is null or in [-90, 90], longitude null or in [-180, 180]', async (t) => {
  const office = (latitude: unknown, longitude: unknown) => ({ city: 'Berlin', latitude, longitude });
  for (const [lat, lng] of [
    [null, null],
    [-90, -180],
    [90, 180],
    [0, 0],
    [37.692934, -121.904945],
  ] as const) {
    t.same(violationsOf({ ...base(), offices: [office(lat, lng)] }), [], `(${lat}, ${lng}) is valid`);
  }
  t.same(violationsOf({ ...base(), offices: [{ city: 'no coordinates' }] }), [], 'absent coordinates are fine');
  t.same(violationsOf({ ...base(), offices: [] }), [], 'no offices');
  const cases: [unknown, unknown, string[]][] = [
    [90.0001, 0, ['/offices/1/latitude']],
    [-90.5, 0, ['/offices/1/latitude']],
    [0, 180.5, ['/offices/1/longitude']],
    [0, -181, ['/offices/1/longitude']],
    ['13.08', 0, ['/offices/1/latitude']],
    [91, 200, ['/offices/1/latitude', '/offices/1/longitude']],
  ];
  for (const [lat, lng, paths] of cases) {
    const violations = violationsOf({ ...base(), offices: [office(1, 1), office(lat, lng)] });
    t.same(
      violations.map((v) => v.path),
      paths,
      `(${JSON.stringify(lat)}, ${JSON.stringify(lng)}) → ${paths.join(', ')}`,
    );
  }
  t.match(violationsOf({ ...base(), offices: [office(91, 0)] })[0], { keyword: 'maximum', message: 'must be <= 90' });
});

t.test('funding_rounds[].raised_amount is null or >= 0, raised_currency_code null or 3 capital letters', async (t) => {
  const round = (raised_amount: unknown, raised_currency_code: unknown) => ({ round_code: 'a', raised_amount, raised_currency_code });
  for (const [amount, code] of [
    [null, null],
    [0, 'USD'],
    [5250000.5, 'EUR'],
    [12400000, 'JPY'],
  ] as const) {
    t.same(violationsOf({ ...base(), funding_rounds: [round(amount, code)] }), [], `(${amount}, ${code}) is valid`);
  }
  const cases: [unknown, unknown, string[]][] = [
    [-1, 'USD', ['/funding_rounds/0/raised_amount']],
    ['100', 'USD', ['/funding_rounds/0/raised_amount']],
    [1, 'usd', ['/funding_rounds/0/raised_currency_code']],
    [1, 'US', ['/funding_rounds/0/raised_currency_code']],
    [1, 'EURO', ['/funding_rounds/0/raised_currency_code']],
    [1, '', ['/funding_rounds/0/raised_currency_code']],
    [1, 840, ['/funding_rounds/0/raised_currency_code']],
    [-5, 'us$', ['/funding_rounds/0/raised_amount', '/funding_rounds/0/raised_currency_code']],
  ];
  for (const [amount, code, paths] of cases) {
    const violations = violationsOf({ ...base(), funding_rounds: [round(amount, code)] });
    t.same(
      violations.map((v) => v.path),
      paths,
      `(${JSON.stringify(amount)}, ${JSON.stringify(code)}) → ${paths.join(', ')}`,
    );
  }
  t.match(violationsOf({ ...base(), funding_rounds: [round(1, 'usd')] })[0]?.message, /\[A-Z\]\{3\}/);
});

t.test('offices and funding_rounds, when present, are lists of objects', async (t) => {
  t.same(violationsOf({ ...base(), offices: null, funding_rounds: null }), []);
  t.same(
    violationsOf({ ...base(), offices: 'Berlin' }).map((v) => v.path),
    ['/offices'],
  );
  t.same(
    violationsOf({ ...base(), funding_rounds: [null] }).map((v) => v.path),
    ['/funding_rounds/0'],
  );
});

t.test('extra fields are allowed everywhere and kept', async (t) => {
  const record = {
    ...base(),
    _id: '9c0bf1b76f6ffa6746a21d40',
    anything: { nested: [1, 'two', null] },
    offices: [{ latitude: 1, longitude: 2, extra: true }],
    funding_rounds: [{ raised_amount: 1, investments: [{ person: null }] }],
  };
  const copy = structuredClone(record);
  t.same(validateRecord(record), { valid: true });
  t.same(record, copy, 'validation does not strip or change anything');
});

t.test('every violation is reported at once, with its path', async (t) => {
  const result = validateRecord({
    name: '',
    founded_year: 2101,
    founded_month: 13,
    email_address: 'nope',
    offices: [
      { latitude: 0, longitude: 0 },
      { latitude: -91, longitude: 0 },
    ],
    funding_rounds: [{ raised_amount: -1, raised_currency_code: 'usd' }],
  });
  t.equal(result.valid, false);
  const violations = result.valid ? [] : result.violations;
  t.same(violations.map((v) => v.path).sort(), [
    '/email_address',
    '/founded_month',
    '/founded_year',
    '/funding_rounds/0/raised_amount',
    '/funding_rounds/0/raised_currency_code',
    '/name',
    '/offices/1/latitude',
    '/permalink',
  ]);
  for (const v of violations) {
    t.type(v.keyword, 'string');
    t.match(v.message, /^must /, `${v.path}: ${v.message}`);
  }
});

t.test('the compiled validator is reused: many calls are fast', async (t) => {
  const record = { ...base(), founded_year: 1999, offices: [{ latitude: 1, longitude: 2 }] };
  const start = process.hrtime.bigint();
  for (let i = 0; i < 20_000; i++) validateRecord(record);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.ok(ms < 2_000, `20,000 validations took ${ms.toFixed(1)} ms`);
});
