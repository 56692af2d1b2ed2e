import t from 'tap';
import {
  chooseFormat,
  csvColumns,
  csvField,
  csvHeader,
  csvRows,
  decodeCursor,
  encodeCursor,
  ndjsonLine,
  reportEntryOf,
  validationCode,
  type ReportEntry,
} from './error-report.js';
import type { LineageEvent } from './lineage.js';

const at = Date.UTC(2026, 11, 3, 10, 0, 0);
const position = { topic: 'ValidationError', partition: 2, offset: 41 };
const invalid: LineageEvent = {
  kind: 'invalid',
  requestId: 'req-00000001',
  tenant: 'acme',
  at,
  recordIndex: 7,
  recordKey: 'acme-corp',
  violations: [
    { path: '/founded_year', keyword: 'minimum', message: 'must be >= 1800' },
    { path: '', keyword: 'required', message: "must have required property 'name'" },
  ],
  source: { topic: 'RecordExtracted', partition: 1, offset: 99 },
};
const processingError = (stage: string, code: string): LineageEvent => ({
  kind: 'processing-error',
  requestId: 'req-00000001',
  tenant: 'acme',
  at,
  stage,
  code,
  message: 'value too long for type character varying(200)',
  recordIndex: 12,
  recordKey: 'long-one',
  source: { topic: 'RecordValidated', partition: 0, offset: 5 },
  effect: 'none',
});

/** RFC 4180 rows back from CSV text (quoted fields, doubled quotes, CRLF), for the round trip. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') {
      row.push(field);
      field = '';
    } else if (char === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += char;
  }
  return rows;
}

t.test('a ValidationError is an entry with every violation; the message names the first', async (t) => {
  const entry = reportEntryOf(invalid, position)!;
  t.match(entry, {
    kind: 'validation',
    stage: 'validate',
    code: validationCode,
    recordIndex: 7,
    recordKey: 'acme-corp',
    source: { topic: 'RecordExtracted', partition: 1, offset: 99 },
    event: position,
    detectedAt: at,
  });
  t.equal(entry.violations!.length, 2);
  t.equal(entry.message, '/founded_year: must be >= 1800 (and 1 more)');
});

t.test('a load error with a PostgreSQL code is a refused row; any other ProcessingError is processing', async (t) => {
  t.equal(reportEntryOf(processingError('load', 'PG_22001'), position)!.kind, 'rejected');
  t.equal(reportEntryOf(processingError('load', 'UNDECODABLE'), position)!.kind, 'processing');
  t.equal(reportEntryOf(processingError('extract', 'S3_OBJECT_MISSING'), position)!.kind, 'processing');
  t.same(reportEntryOf(processingError('validate', 'UNPROCESSABLE'), position)!.violations, null);
  const received: LineageEvent = { kind: 'received', requestId: 'r', tenant: 'acme', at, filename: null, size: 1, recordsExpected: 1 };
  t.equal(reportEntryOf(received, position), undefined, 'not an error');
});

t.test('cursor: round trip; anything else is refused', async (t) => {
  for (const cursor of [
    { recordIndex: -1, id: '1' },
    { recordIndex: 0, id: '42' },
    { recordIndex: 123456, id: '9007199254740993' },
  ]) {
    t.same(decodeCursor(encodeCursor(cursor)), cursor);
  }
  for (const bad of ['', '1', '1.', '.1', '-2.1', '01.1', '1.0', 'a.b', '1.1.1', '1.-1']) t.equal(decodeCursor(bad), undefined, JSON.stringify(bad));
  t.equal(decodeCursor('1.9223372036854775808'), undefined, 'an id past the bigint range');
  t.same(decodeCursor('1.9223372036854775807'), { recordIndex: 1, id: '9223372036854775807' }, 'the largest bigint');
});

t.test('format: ?format= wins, then Accept, JSON by default', async (t) => {
  t.equal(chooseFormat('csv', 'application/json'), 'csv');
  t.equal(chooseFormat('xml', undefined), undefined);
  t.equal(chooseFormat(undefined, 'text/csv'), 'csv');
  t.equal(chooseFormat(undefined, 'application/x-ndjson;q=0.9, */*'), 'ndjson');
  t.equal(chooseFormat(undefined, 'text/html, application/json'), 'json');
  t.equal(chooseFormat(undefined, '*/*'), 'json');
  t.equal(chooseFormat(undefined, undefined), 'json');
});

t.test('CSV: one row per violation, fields survive quoting, formulas are defused', async (t) => {
  const entry = reportEntryOf(invalid, position)!;
  const tricky: ReportEntry = {
    ...reportEntryOf(processingError('load', 'PG_22001'), position)!,
    recordKey: '=HYPERLINK("x")',
    message: 'line one\r\nline "two", three',
  };
  const rows = parseCsv(csvHeader() + csvRows(entry) + csvRows(tricky));
  t.same(rows[0], [...csvColumns]);
  t.equal(rows.length, 4, 'header, two violations, one refused row');
  const column = (row: string[], name: (typeof csvColumns)[number]) => row[csvColumns.indexOf(name)];
  t.same(
    rows.slice(1, 3).map((row) => [column(row, 'record_index'), column(row, 'path'), column(row, 'keyword')]),
    [
      ['7', '/founded_year', 'minimum'],
      ['7', '', 'required'],
    ],
  );
  t.equal(column(rows[3]!, 'message'), 'line one\r\nline "two", three');
  t.equal(column(rows[3]!, 'record_key'), '\t=HYPERLINK("x")', 'a leading = is not a formula');
  t.equal(column(rows[3]!, 'detected_at'), new Date(at).toISOString());
  t.equal(csvField(null), '');
  t.equal(csvField(-1), '-1', 'numbers are left alone');
});

t.test('NDJSON: one line per entry, the API form', async (t) => {
  const line = ndjsonLine(reportEntryOf(invalid, position)!);
  t.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'));
  t.match(JSON.parse(line), {
    kind: 'validation',
    record_index: 7,
    record_key: 'acme-corp',
    violations: [{ path: '/founded_year' }, { keyword: 'required' }],
    source: { topic: 'RecordExtracted', partition: 1, offset: 99 },
    detected_at: new Date(at).toISOString(),
  });
});
