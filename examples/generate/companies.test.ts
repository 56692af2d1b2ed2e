import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { normalizeRecord } from '../../topology/etl/normalize.js';
import { validateRecord } from '../../topology/etl/validate-record.js';
import { INVALID_RULES, companies, generateCompanies, mulberry32, summarize, writeCompanies, type GenerateOptions, type GeneratedRecord } from './companies.js';

const options: GenerateOptions = { count: 2_000, seed: 42, invalidEvery: 10, duplicateEvery: 25 };
const records = [...generateCompanies(options)];

function digest(lines: Iterable<string>): string {
  const hash = createHash('sha256');
  for (const line of lines) hash.update(`${line}\n`);
  return hash.digest('hex');
}

/** The distinct violation paths the validator reports for a line, sorted. */
function reportedPaths(line: string): string[] | 'valid' {
  const result = validateRecord(normalizeRecord(JSON.parse(line)));
  return result.valid ? 'valid' : [...new Set(result.violations.map((v) => v.path))].sort();
}

t.test('mulberry32 is deterministic and in [0, 1)', async (t) => {
  const a = mulberry32(7);
  const b = mulberry32(7);
  const xs = Array.from({ length: 1000 }, () => a());
  t.same(
    xs,
    Array.from({ length: 1000 }, () => b()),
  );
  t.ok(xs.every((x) => x >= 0 && x < 1));
  t.not(mulberry32(8)(), mulberry32(7)());
});

t.test('the same options give the same bytes; another seed gives other bytes', async (t) => {
  const again = [...generateCompanies(options)];
  t.equal(digest(again.map((r) => r.line)), digest(records.map((r) => r.line)));
  t.equal(
    JSON.stringify(again.map(({ line: _line, ...rest }) => rest)),
    JSON.stringify(records.map(({ line: _line, ...rest }) => rest)),
    'and the same expectations',
  );
  const other = [...generateCompanies({ ...options, seed: 43 })];
  t.not(digest(other.map((r) => r.line)), digest(records.map((r) => r.line)));
  t.equal(other.length, records.length);

  const view = companies(options);
  t.equal(digest(view.lines), digest(records.map((r) => r.line)), 'companies().lines is the same stream');
  t.equal(digest(view.lines), digest(records.map((r) => r.line)), 'and can be iterated again');
  t.equal(view.options.bytesPerRecord, 4_000, 'defaults are filled in');
});

t.test('a prefix of a longer run is the shorter run', async (t) => {
  const longer = [...generateCompanies({ ...options, count: 2_500 })].slice(0, options.count);
  t.equal(digest(longer.map((r) => r.line)), digest(records.map((r) => r.line)));
});

t.test('every line is one line of JSON in MongoDB export shape', async (t) => {
  const problems: string[] = [];
  const docs: Record<string, unknown>[] = [];
  for (const record of records) {
    if (record.line.includes('\n')) problems.push(`${record.index}: newline`);
    const value: unknown = JSON.parse(record.line);
    if (Array.isArray(value)) continue;
    const doc = value as Record<string, unknown>;
    docs.push(doc);
    const id = doc._id as { $oid?: unknown } | undefined;
    if (typeof id?.$oid !== 'string' || !/^[0-9a-f]{24}$/.test(id.$oid)) problems.push(`${record.index}: _id`);
    for (const field of ['created_at', 'updated_at']) {
      const date = doc[field];
      const ok =
        typeof date === 'string'
          ? /^[A-Z][a-z]{2} [A-Z][a-z]{2} \d{2} \d{2}:\d{2}:\d{2} UTC \d{4}$/.test(date)
          : date !== null && typeof date === 'object' && '$date' in date;
      if (!ok) problems.push(`${record.index}: ${field}`);
    }
    if (!Array.isArray(doc.offices) || !Array.isArray(doc.funding_rounds)) problems.push(`${record.index}: lists`);
  }
  t.same(problems, [], 'every line parses and has the export shape');
  t.ok(docs.length > 0);
  t.ok(
    docs.some((d) => typeof d.created_at === 'string'),
    'some dates are Crunchbase strings',
  );
  t.ok(
    docs.some((d) => typeof d.created_at === 'object'),
    'some dates are $date',
  );
  t.ok(
    docs.some((d) => (d.offices as unknown[]).length > 0),
    'some records have offices',
  );
  t.ok(
    docs.some((d) => (d.funding_rounds as unknown[]).length > 0),
    'some records have funding rounds',
  );
  t.ok(docs.some((d) => d.email_address === '') && docs.some((d) => d.email_address === null), 'some fields are empty');
});

t.test('invalid records break exactly the expected rule, valid records pass', async (t) => {
  const seen = new Set<string>();
  let invalid = 0;
  const problems: string[] = [];
  for (const record of records) {
    const reported = reportedPaths(record.line);
    if (record.expectedValid) {
      if (reported !== 'valid' || record.brokenRule !== undefined || record.expectedViolationPaths.length > 0) {
        problems.push(`${record.index} should be valid, got ${JSON.stringify(reported)}`);
      }
    } else {
      invalid++;
      seen.add(record.brokenRule ?? '?');
      if (JSON.stringify(reported) !== JSON.stringify(record.expectedViolationPaths)) {
        problems.push(`${record.index} (${record.brokenRule}) expected ${JSON.stringify(record.expectedViolationPaths)}, got ${JSON.stringify(reported)}`);
      }
      if ((record.index + 1) % 10 !== 0) problems.push(`${record.index} is invalid off the cadence`);
    }
  }
  t.same(problems, [], 'the validator agrees with every expectation');
  const firstOfEach = new Map<string, GeneratedRecord>();
  for (const r of records) if (r.brokenRule && !firstOfEach.has(r.brokenRule)) firstOfEach.set(r.brokenRule, r);
  for (const [rule, r] of firstOfEach) t.same(reportedPaths(r.line), r.expectedViolationPaths, `${rule}: ${r.expectedViolationPaths.join(', ') || "''"}`);
  t.equal(invalid, 200);
  t.same([...seen].sort(), [...INVALID_RULES].sort(), 'every rule is used');
  t.same(
    records
      .filter((r) => !r.expectedValid)
      .slice(0, 10)
      .map((r) => r.brokenRule),
    INVALID_RULES,
    'rules are used in turn',
  );
});

t.test('without invalidEvery every record is valid', async (t) => {
  const all = [...generateCompanies({ count: 300, seed: 5 })];
  t.ok(all.every((r) => r.expectedValid && r.duplicateOf === undefined));
  t.ok(all.every((r) => reportedPaths(r.line) === 'valid'));
});

t.test('duplicates reuse the permalink of an earlier valid record, with other content', async (t) => {
  const byIndex = new Map<number, GeneratedRecord>(records.map((r) => [r.index, r]));
  const duplicates = records.filter((r) => r.duplicateOf !== undefined);
  t.ok(duplicates.length >= 70, `${duplicates.length} duplicates`);
  const problems: string[] = [];
  for (const duplicate of duplicates) {
    const original = byIndex.get(duplicate.duplicateOf!)!;
    const a = JSON.parse(original.line) as Record<string, unknown>;
    const b = JSON.parse(duplicate.line) as Record<string, unknown>;
    const checks: [string, boolean][] = [
      ['the original comes first', original.index < duplicate.index],
      ['the original is a valid first occurrence', original.expectedValid && original.duplicateOf === undefined],
      ['the duplicate is valid', duplicate.expectedValid && reportedPaths(duplicate.line) === 'valid'],
      ['same permalink', duplicate.permalink === original.permalink && b.permalink === a.permalink],
      ['same _id (the same document, updated)', JSON.stringify(b._id) === JSON.stringify(a._id)],
      ['different content', duplicate.line !== original.line],
    ];
    for (const [what, ok] of checks) if (!ok) problems.push(`${duplicate.index}: ${what}`);
  }
  t.same(problems, [], 'every duplicate repeats an earlier valid permalink with other content');
  // 25, 50 (invalid: moved to 51), 75, 100 (invalid: moved to 101), ... (1-based)
  t.same(
    duplicates.slice(0, 4).map((r) => r.index + 1),
    [25, 51, 75, 101],
  );
});

t.test('summarize counts records, validity and distinct valid permalinks', async (t) => {
  const summary = summarize(records);
  const valid = records.filter((r) => r.expectedValid);
  t.equal(summary.total, 2_000);
  t.equal(summary.invalid, 200);
  t.equal(summary.valid, 1_800);
  t.equal(summary.duplicates, records.filter((r) => r.duplicateOf !== undefined).length);
  t.equal(summary.distinctValidPermalinks, new Set(valid.map((r) => r.permalink)).size);
  t.equal(summary.distinctValidPermalinks, summary.valid - summary.duplicates);
  t.same(summarize([]), { total: 0, valid: 0, invalid: 0, duplicates: 0, distinctValidPermalinks: 0 });

  // Checked against the lines themselves, as a database would see them.
  const rows = new Set<string>();
  for (const record of records) {
    const value = normalizeRecord(JSON.parse(record.line));
    if (validateRecord(value).valid) rows.add((value as { permalink: string }).permalink);
  }
  t.equal(rows.size, summary.distinctValidPermalinks);
});

t.test('the average line is about bytesPerRecord bytes', async (t) => {
  for (const bytesPerRecord of [4_000, 8_000]) {
    const sized = [...generateCompanies({ count: 1_000, seed: 3, bytesPerRecord })];
    const average = sized.reduce((sum, r) => sum + Buffer.byteLength(r.line), 0) / sized.length;
    t.ok(Math.abs(average - bytesPerRecord) / bytesPerRecord < 0.05, `average ${average.toFixed(0)} bytes for ${bytesPerRecord}`);
  }
  const average = records.reduce((sum, r) => sum + Buffer.byteLength(r.line), 0) / records.length;
  t.ok(Math.abs(average - 4_000) < 200, `average ${average.toFixed(0)} bytes with invalid records and duplicates`);
});

t.test('tenant prefixes permalinks', async (t) => {
  const [first] = generateCompanies({ count: 1, seed: 1, tenant: 'acme' });
  t.match(first?.permalink, /^acme-[a-z]+-0$/);
  t.equal(reportedPaths(first!.line), 'valid');
  t.throws(() => [...generateCompanies({ count: 1, seed: 1, tenant: 'Not Valid' })], RangeError);
});

t.test('bad options are rejected', async (t) => {
  for (const bad of [
    { count: -1, seed: 1 },
    { count: 1.5, seed: 1 },
    { count: 1, seed: 0.5 },
    { count: 1, seed: 1, invalidEvery: -2 },
    { count: 1, seed: 1, duplicateEvery: 0.5 },
    { count: 1, seed: 1, bytesPerRecord: -1 },
  ]) {
    t.throws(() => generateCompanies(bad).next(), RangeError, JSON.stringify(bad));
  }
  t.same([...generateCompanies({ count: 0, seed: 1 })], []);
});

t.test('odd cadences: every record invalid, every record a duplicate', async (t) => {
  const allInvalid = [...generateCompanies({ count: 30, seed: 9, invalidEvery: 1, duplicateEvery: 1 })];
  t.ok(allInvalid.every((r) => !r.expectedValid && r.duplicateOf === undefined));
  t.same(summarize(allInvalid).distinctValidPermalinks, 0);
  const allDuplicates = [...generateCompanies({ count: 30, seed: 9, duplicateEvery: 1 })];
  t.equal(allDuplicates[0]?.duplicateOf, undefined);
  t.ok(allDuplicates.slice(1).every((r) => r.duplicateOf === 0));
  t.equal(summarize(allDuplicates).distinctValidPermalinks, 1);
});

t.test('writeCompanies streams the lines to a file and returns the summary', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'companies-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'companies.ndjson');
  const result = await writeCompanies(path, options);
  const text = readFileSync(path, 'utf8');
  t.equal(text, records.map((r) => `${r.line}\n`).join(''));
  t.same(result, { ...summarize(records), bytes: Buffer.byteLength(text) });
  await t.rejects(writeCompanies(join(dir, 'missing', 'x.ndjson'), options), { code: 'ENOENT' });
});
