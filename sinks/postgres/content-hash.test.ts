import t from 'tap';
import { contentHash } from './content-hash.js';
import { companyRows, type SinkRecord } from './company-writer.js';

function record(document: Record<string, unknown>, source: Partial<SinkRecord['source']> = {}): SinkRecord {
  return {
    tenant: 'acme',
    permalink: String(document.permalink),
    document,
    source: { requestId: 'req-1', bucket: 'b', key: 'acme/f.ndjson', recordIndex: 0, acceptedAt: 1_000, ...source },
    offset: '0',
  };
}

function hashOf(document: Record<string, unknown>, source: Partial<SinkRecord['source']> = {}): string {
  const rows = companyRows(record(document, source));
  if (typeof rows === 'string') throw new Error(rows);
  return rows.company.content_hash;
}

const base = {
  permalink: 'acme-co',
  name: 'Acme',
  founded_year: 2001,
  created_at: '2020-01-02T03:04:05Z',
  offices: [
    { city: 'Oslo', latitude: 59.9, longitude: 10.7 },
    { city: 'Bergen', zip_code: '5003' },
  ],
  funding_rounds: [{ round_code: 'a', raised_amount: 1_000_000, funded_year: 2010 }],
  tags: { a: 1, b: [1, 2, { z: null, y: 'x' }] },
};

t.test('the same record gives the same hash, wherever it came from', async (t) => {
  const hash = hashOf(structuredClone(base));
  t.match(hash, /^[0-9a-f]{64}$/);
  t.equal(hashOf(structuredClone(base)), hash, 'same record, same hash');
  t.equal(hashOf(structuredClone(base), { requestId: 'req-1-rabc', acceptedAt: 2_000, recordIndex: 7, key: 'other' }), hash, 'the source is not data');
});

t.test('any change of a field or a child row changes the hash', async (t) => {
  const hash = hashOf(structuredClone(base));
  const changes: Array<[string, (doc: any) => void]> = [
    ['a mapped column', (doc) => (doc.name = 'Acme Inc')],
    ['a number', (doc) => (doc.founded_year = 2002)],
    ['a timestamp', (doc) => (doc.created_at = '2020-01-02T03:04:06Z')],
    ['a field only the document holds', (doc) => (doc.tags.b[2].y = 'w')],
    ['a new field', (doc) => (doc.extra = true)],
    ['a removed field', (doc) => delete doc.founded_year],
    ['a null instead of a value', (doc) => (doc.founded_year = null)],
    ['an office field', (doc) => (doc.offices[1].city = 'Trondheim')],
    ['an office coordinate', (doc) => (doc.offices[0].latitude = 59.91)],
    ['an office more', (doc) => doc.offices.push({ city: 'Tromsø' })],
    ['an office less', (doc) => doc.offices.pop()],
    ['offices in another order', (doc) => doc.offices.reverse()],
    ['a funding round field', (doc) => (doc.funding_rounds[0].raised_amount = 2_000_000)],
    ['a funding round more', (doc) => doc.funding_rounds.push({ round_code: 'b' })],
    ['no funding rounds', (doc) => (doc.funding_rounds = [])],
  ];
  const seen = new Set([hash]);
  for (const [what, change] of changes) {
    const doc = structuredClone(base);
    change(doc);
    const changed = hashOf(doc);
    t.not(changed, hash, what);
    seen.add(changed);
  }
  t.equal(seen.size, changes.length + 1, 'every change gives its own hash');
});

t.test('the hash covers the rows as the sink maps them, not only the document', async (t) => {
  const rows = { company: { name: 'Acme' }, document: { name: 'Acme' }, offices: [], rounds: [] };
  t.not(contentHash(rows), contentHash({ ...rows, company: { name: 'acme' } }));
  t.not(contentHash(rows), contentHash({ ...rows, offices: [{ position: 0 }] }));
  t.not(contentHash(rows), contentHash({ ...rows, rounds: [{ position: 0 }] }));
});
