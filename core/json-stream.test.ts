import t, { type Test } from 'tap';
import { PipelineError } from './errors.js';
import { JsonScanError, JsonScanner, type BodyFormat, type JsonScanErrorCode, type JsonScannerOptions } from './json-stream.js';

// ---------------------------------------------------------------------------------------------
// Helpers

type Outcome =
  | { ok: true; format: BodyFormat; records: number; bytes: number; raws: string[] }
  | { ok: false; code: JsonScanErrorCode; offset: number; message: string; raws: string[] };

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

function bytes(...parts: Array<string | number[] | Buffer>): Buffer {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
}

/**
 * Feeds `body` cut at `cuts` (ascending offsets). Every chunk is written from a scratch buffer
 * that is overwritten right after write() returns, as a caller reusing its buffer would do.
 */
function scanCut(body: Buffer, options: JsonScannerOptions, cuts: readonly number[]): Outcome {
  const raws: string[] = [];
  const scanner = new JsonScanner({
    ...options,
    onRecord: (raw, index) => {
      if (index !== raws.length) throw new Error(`record index ${index}, expected ${raws.length}`);
      raws.push(raw.toString('latin1'));
    },
  });
  const scratch = Buffer.alloc(body.length + 1);
  try {
    let from = 0;
    for (const to of [...cuts, body.length]) {
      const chunk = scratch.subarray(0, to - from);
      body.copy(chunk, 0, from, to);
      scanner.write(chunk);
      chunk.fill(0xaa);
      from = to;
    }
    const result = scanner.end();
    return { ok: true, ...result, raws };
  } catch (error) {
    if (!(error instanceof JsonScanError)) throw error;
    return { ok: false, code: error.code, offset: error.offset, message: error.message, raws };
  }
}

function scan(body: Buffer | string, options: JsonScannerOptions = {}): Outcome {
  return scanCut(typeof body === 'string' ? Buffer.from(body) : body, options, []);
}

function eachSplit(length: number): number[][] {
  const splits: number[][] = [];
  for (let k = 1; k < length; k++) splits.push([k]);
  if (length > 2) splits.push(Array.from({ length: length - 1 }, (_, k) => k + 1)); // 1-byte chunks
  return splits;
}

/** The outcome in one chunk, after checking that every 2-chunk split and 1-byte chunks give exactly the same. */
function scanAllSplits(t: Test, body: Buffer | string, options: JsonScannerOptions = {}): Outcome {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  const whole = scanCut(buf, options, []);
  const expected = JSON.stringify(whole);
  const differing: string[] = [];
  for (const cuts of eachSplit(buf.length)) {
    const got = JSON.stringify(scanCut(buf, options, cuts));
    if (got !== expected) differing.push(`${cuts.length === 1 ? `split at ${cuts[0]}` : '1-byte chunks'}: ${got}`);
  }
  t.same(differing, [], `every split of ${JSON.stringify(buf.toString('latin1').slice(0, 60))} gives ${expected.slice(0, 160)}`);
  return whole;
}

function expectOk(t: Test, outcome: Outcome, format: BodyFormat, records: number): void {
  t.match(outcome, { ok: true, format, records }, `${format} with ${records} records`);
}

function expectError(t: Test, outcome: Outcome, code: JsonScanErrorCode, offset: number): void {
  t.match(outcome, { ok: false, code, offset }, `${code} at byte ${offset}`);
  if (!outcome.ok) t.match(outcome.message, code === 'EMPTY_BODY' ? /empty/ : new RegExp(`byte ${offset}\\b`), 'the message names the offset');
}

// A small seeded PRNG (mulberry32) so that the property tests are reproducible.
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Shapes

t.test('a single object is one record, in detect and json mode', async (t) => {
  for (const expect of ['detect', 'json'] as const) {
    t.same(scan('{"a":1,"b":[1,2,{"c":null}]}', { expect }), {
      ok: true,
      format: 'object',
      records: 1,
      bytes: 28,
      raws: ['{"a":1,"b":[1,2,{"c":null}]}'],
    });
    expectOk(t, scan(' \r\n\t{ "a" : { } }\r\n\n  ', { expect }), 'object', 1);
    expectOk(t, scan('{}', { expect }), 'object', 1);
  }
});

t.test('a pretty-printed object is one record', async (t) => {
  const body = JSON.stringify({ a: [1, { b: 'x' }], c: { d: true, e: null } }, null, 2) + '\n';
  expectOk(t, scanAllSplits(t, body), 'object', 1);
  expectOk(t, scan(body, { expect: 'json' }), 'object', 1);
});

t.test('an array has one record per element, of any JSON type', async (t) => {
  for (const expect of ['detect', 'json'] as const) {
    const outcome = scan('[1,"a",{"b":[]},[2,[3]],null,true,false,-1.5e3]', { expect });
    expectOk(t, outcome, 'array', 8);
    t.same(outcome.raws, ['1', '"a"', '{"b":[]}', '[2,[3]]', 'null', 'true', 'false', '-1.5e3']);
  }
  expectOk(t, scan(JSON.stringify([{ a: 1 }, { b: 2 }], null, 2)), 'array', 2);
});

t.test('an empty array is valid with 0 records', async (t) => {
  for (const body of ['[]', '[ ]', ' [\n]\n', '\r\n[\t]']) {
    expectOk(t, scanAllSplits(t, body), 'array', 0);
    expectOk(t, scan(body, { expect: 'json' }), 'array', 0);
  }
});

t.test('NDJSON: one value per line, in detect and ndjson mode', async (t) => {
  const body = '{"a":1}\n{"b":2}\n{"c":3}\n';
  expectOk(t, scanAllSplits(t, body), 'ndjson', 3);
  expectOk(t, scan(body, { expect: 'ndjson' }), 'ndjson', 3);
  t.match(scan(body), { bytes: body.length }, 'bytes is the body length');
});

t.test('NDJSON: the last line may lack its newline', async (t) => {
  expectOk(t, scanAllSplits(t, '{"a":1}\n{"b":2}'), 'ndjson', 2);
  expectOk(t, scanAllSplits(t, '{"a":1}\n42', { expect: 'ndjson' }), 'ndjson', 2);
});

t.test('NDJSON: a number at the very end is complete at end()', async (t) => {
  const outcome = scanAllSplits(t, '1\n-2.5e+3', { expect: 'ndjson' });
  expectOk(t, outcome, 'ndjson', 2);
  t.same(outcome.raws, ['1', '-2.5e+3']);
  t.same(scan('0', { expect: 'ndjson' }).raws, ['0']);
});

t.test('NDJSON: CRLF line ends and blank lines (spaces, tabs, CR) are accepted', async (t) => {
  const body = '\r\n{"a":1}\r\n\r\n  \t \r\n{"b":2}  \r\n\n\n[3]\r\n \t';
  const outcome = scanAllSplits(t, body);
  expectOk(t, outcome, 'ndjson', 3);
  t.same(outcome.raws, ['{"a":1}', '{"b":2}', '[3]'], 'records exclude the line terminators and blanks');
});

t.test('NDJSON: scalars are allowed as lines', async (t) => {
  const outcome = scanAllSplits(t, '"a"\n1\ntrue\nnull\n{"x":1}\n[1]\n', { expect: 'ndjson' });
  expectOk(t, outcome, 'ndjson', 6);
  t.same(outcome.raws, ['"a"', '1', 'true', 'null', '{"x":1}', '[1]']);
});

t.test('expect ndjson: the format is ndjson even with one line, and arrays are single records', async (t) => {
  expectOk(t, scan('{"a":1}', { expect: 'ndjson' }), 'ndjson', 1);
  expectOk(t, scan('[1,2,3]\n', { expect: 'ndjson' }), 'ndjson', 1);
  expectOk(t, scan('[1,2]\n[3]\n', { expect: 'ndjson' }), 'ndjson', 2);
});

t.test('detect: a first object followed by values on later lines is NDJSON', async (t) => {
  expectOk(t, scan('{"a":1}\n2\n"x"\n[1,2]\n'), 'ndjson', 4);
});

t.test('detect: a first scalar followed by more lines is NDJSON', async (t) => {
  expectOk(t, scanAllSplits(t, '"a"\n{"b":1}\n'), 'ndjson', 2);
  expectOk(t, scanAllSplits(t, '12\n34'), 'ndjson', 2);
});

t.test('detect: a single scalar is TOP_LEVEL_SCALAR at its offset, reported at end()', async (t) => {
  const scanner = new JsonScanner();
  scanner.write(Buffer.from('  42  \n'));
  t.equal(scanner.records, 1);
  const error = t.throws(() => scanner.end()) as JsonScanError;
  t.equal(error.code, 'TOP_LEVEL_SCALAR');
  t.equal(error.offset, 2);
  expectError(t, scanAllSplits(t, '"just a string"'), 'TOP_LEVEL_SCALAR', 0);
  expectError(t, scanAllSplits(t, '\n  true \n'), 'TOP_LEVEL_SCALAR', 3);
  expectError(t, scan(bytes(BOM, 'null')), 'TOP_LEVEL_SCALAR', 3);
});

t.test('detect: a first array must be the only value', async (t) => {
  expectError(t, scanAllSplits(t, '[1]\n[2]\n'), 'TRAILING_DATA', 4);
  expectError(t, scan('[] {}'), 'TRAILING_DATA', 3);
});

t.test('detect: after a pretty-printed first object, a second value is TRAILING_DATA asking for NDJSON', async (t) => {
  const outcome = scanAllSplits(t, '{\n  "a": 1\n}\n{"b":2}\n');
  expectError(t, outcome, 'TRAILING_DATA', 13);
  if (!outcome.ok) t.match(outcome.message, /one per line \(NDJSON\)/);
});

t.test('a UTF-8 BOM at offset 0 is skipped but counted in bytes', async (t) => {
  const outcome = scanAllSplits(t, bytes(BOM, '{"a":1}\n{"b":2}\n'));
  t.match(outcome, { ok: true, format: 'ndjson', records: 2, bytes: 19 });
  t.same(outcome.raws, ['{"a":1}', '{"b":2}']);
  t.match(scan(bytes(BOM, '[1]'), { expect: 'json' }), { ok: true, format: 'array', records: 1, bytes: 6 });
  expectOk(t, scan(bytes(BOM, '1\n2'), { expect: 'ndjson' }), 'ndjson', 2);
});

t.test('a BOM anywhere else, or a broken BOM, is an error', async (t) => {
  expectError(t, scanAllSplits(t, bytes(' ', BOM, '{}')), 'INVALID_JSON', 1);
  expectError(t, scanAllSplits(t, bytes('[', BOM, ']')), 'INVALID_JSON', 1);
  expectError(t, scanAllSplits(t, bytes([0xef, 0xbb, 0x41])), 'INVALID_UTF8', 2);
  expectError(t, scanAllSplits(t, bytes([0xef, 0x41])), 'INVALID_UTF8', 1);
  expectError(t, scanAllSplits(t, bytes([0xef, 0xbf, 0xbd, 0x7b, 0x7d])), 'INVALID_JSON', 0); // U+FFFD
  expectError(t, scanAllSplits(t, bytes([0xef, 0xbb])), 'INVALID_UTF8', 2);
});

// ---------------------------------------------------------------------------------------------
// Errors, with exact offsets (each checked in every split)

const errorCases: Array<[string, Buffer | string, JsonScannerOptions, JsonScanErrorCode, number]> = [
  ['empty body', '', {}, 'EMPTY_BODY', 0],
  ['whitespace only', ' \r\n\t \n', {}, 'EMPTY_BODY', 0],
  ['BOM only', BOM, {}, 'EMPTY_BODY', 0],
  ['BOM and blank lines', bytes(BOM, '  \r\n\n'), {}, 'EMPTY_BODY', 0],
  ['empty NDJSON', '\n\n', { expect: 'ndjson' }, 'EMPTY_BODY', 0],
  ['empty json', ' ', { expect: 'json' }, 'EMPTY_BODY', 0],

  ['trailing comma in object', '{"a":1,}', {}, 'INVALID_JSON', 7],
  ['trailing comma in array', '[1,]', {}, 'INVALID_JSON', 3],
  ['leading comma in array', '[,1]', {}, 'INVALID_JSON', 1],
  ['missing colon', '{"a" 1}', {}, 'INVALID_JSON', 5],
  ['unquoted key', '{a:1}', {}, 'INVALID_JSON', 1],
  ['single-quoted key', "{'a':1}", {}, 'INVALID_JSON', 1],
  ['missing comma between members', '{"a":1 "b":2}', {}, 'INVALID_JSON', 7],
  ['missing comma between elements', '[1 2]', {}, 'INVALID_JSON', 3],
  ['missing value', '{"a":[1,2,3],"b":}', {}, 'INVALID_JSON', 17],
  ['mismatched bracket ]', '{"a":1]', {}, 'INVALID_JSON', 6],
  ['mismatched bracket }', '[1}', {}, 'INVALID_JSON', 2],
  ['closing bracket first', '}', {}, 'INVALID_JSON', 0],
  ['garbage first', 'x', {}, 'INVALID_JSON', 0],
  ['number key', '{1:2}', {}, 'INVALID_JSON', 1],

  ['leading zero', '[01]', {}, 'INVALID_JSON', 2],
  ['double zero', '[00]', {}, 'INVALID_JSON', 2],
  ['negative leading zero', '[-01]', {}, 'INVALID_JSON', 3],
  ['dot without fraction', '[1.]', {}, 'INVALID_JSON', 3],
  ['dot without integer', '[.5]', {}, 'INVALID_JSON', 1],
  ['plus sign', '[+1]', {}, 'INVALID_JSON', 1],
  ['exponent without digits', '[1e]', {}, 'INVALID_JSON', 3],
  ['exponent sign without digits', '[1e+]', {}, 'INVALID_JSON', 4],
  ['lone minus', '[-]', {}, 'INVALID_JSON', 2],
  ['double minus', '[--1]', {}, 'INVALID_JSON', 2],
  ['NaN', '[NaN]', {}, 'INVALID_JSON', 1],
  ['Infinity', '[Infinity]', {}, 'INVALID_JSON', 1],
  ['-Infinity', '[-Infinity]', {}, 'INVALID_JSON', 2],
  ['hex number', '[0x10]', {}, 'INVALID_JSON', 2],
  ['two dots', '[1.5.2]', {}, 'INVALID_JSON', 4],
  ['dot then exponent', '[1.e5]', {}, 'INVALID_JSON', 3],
  ['NDJSON line "1."', '1.\n', { expect: 'ndjson' }, 'INVALID_JSON', 2],
  ['NDJSON line "01"', '01\n', { expect: 'ndjson' }, 'INVALID_JSON', 1],
  ['NDJSON line "1e"', '{}\n1e\n', { expect: 'ndjson' }, 'INVALID_JSON', 5],

  ['truncated literal', '[tru]', {}, 'INVALID_JSON', 4],
  ['misspelled literal', '[nul1]', {}, 'INVALID_JSON', 4],
  ['capitalised literal', '[True]', {}, 'INVALID_JSON', 1],
  ['literal with extra letter', '[nulll]', {}, 'INVALID_JSON', 5],
  ['literal false', '[fals3]', {}, 'INVALID_JSON', 5],

  ['unknown escape', '["a\\x"]', {}, 'INVALID_JSON', 4],
  ['escaped single quote', '["\\\'"]', {}, 'INVALID_JSON', 3],
  ['short \\u escape', '["\\u12"]', {}, 'INVALID_JSON', 6],
  ['non-hex \\u escape', '{"a":"\\u12G4"}', {}, 'INVALID_JSON', 10],
  ['bad escape in a key', '{"a\\q":1}', {}, 'INVALID_JSON', 4],
  ['NUL byte in a string', bytes('["a', [0], 'b"]'), {}, 'INVALID_JSON', 3],
  ['raw tab in a string', '["a\tb"]', {}, 'INVALID_JSON', 3],
  ['raw newline in a string', '["a\nb"]', {}, 'INVALID_JSON', 3],
  ['raw 0x1f in a key', bytes('{"', [0x1f], '":1}'), {}, 'INVALID_JSON', 2],

  ['json: data after the object', '{} x', { expect: 'json' }, 'TRAILING_DATA', 3],
  ['json: two objects', '{}{}', { expect: 'json' }, 'TRAILING_DATA', 2],
  ['json: two objects on two lines', '{}\n{}', { expect: 'json' }, 'TRAILING_DATA', 3],
  ['json: comma after the object', '{},', { expect: 'json' }, 'TRAILING_DATA', 2],
  ['json: two arrays', '[] []', { expect: 'json' }, 'TRAILING_DATA', 3],
  ['detect: two objects on one line', '{"a":1} {"b":2}', {}, 'TRAILING_DATA', 8],
  ['detect: third value on the second line', '{}\n{} {}', {}, 'TRAILING_DATA', 6],
  ['ndjson: two values on one line', '1 2\n', { expect: 'ndjson' }, 'TRAILING_DATA', 2],
  ['ndjson: two objects glued', '{"a":1}{"b":2}\n', { expect: 'ndjson' }, 'TRAILING_DATA', 7],
  ['ndjson: trailing comma after a line', '{"a":1},\n', { expect: 'ndjson' }, 'TRAILING_DATA', 7],
  ['detect: stray } after the object', '{}\n}', {}, 'TRAILING_DATA', 3],
  ['detect: stray } after NDJSON records', '{}\n{}\n}', {}, 'INVALID_JSON', 6],
  ['ndjson: stray } at the start of a line', '{}\n}', { expect: 'ndjson' }, 'INVALID_JSON', 3],
  ['detect: pretty-printed object then another', '{\n}\n{}', {}, 'TRAILING_DATA', 4],

  ['json: top-level number', '1', { expect: 'json' }, 'TOP_LEVEL_SCALAR', 0],
  ['json: top-level string after whitespace', '  "a"', { expect: 'json' }, 'TOP_LEVEL_SCALAR', 2],
  ['json: top-level null', 'null', { expect: 'json' }, 'TOP_LEVEL_SCALAR', 0],
  ['json: top-level scalar detected at its first byte', '-x', { expect: 'json' }, 'TOP_LEVEL_SCALAR', 0],
  ['detect: top-level number', '42', {}, 'TOP_LEVEL_SCALAR', 0],
  ['detect: top-level false after BOM', bytes(BOM, 'false\r\n'), {}, 'TOP_LEVEL_SCALAR', 3],

  ['ndjson: newline inside an object', '{"a":\n1}\n', { expect: 'ndjson' }, 'INVALID_JSON', 5],
  ['ndjson: newline inside an array', '[1,\n2]', { expect: 'ndjson' }, 'INVALID_JSON', 3],
  ['detect: newline inside the second NDJSON value', '{"a":1}\n[1,\n2]', {}, 'INVALID_JSON', 11],

  ['truncated: open object', '{', {}, 'TRUNCATED', 1],
  ['truncated: after key', '{"a"', {}, 'TRUNCATED', 4],
  ['truncated: after colon', '{"a":', {}, 'TRUNCATED', 5],
  ['truncated: inside array after a number', '[1,2', {}, 'TRUNCATED', 4],
  ['truncated: inside a string', '"abc', { expect: 'ndjson' }, 'TRUNCATED', 4],
  ['truncated: after a backslash', '{"a":"\\', {}, 'TRUNCATED', 7],
  ['truncated: inside \\u', '{"a":"\\u00', {}, 'TRUNCATED', 10],
  ['truncated: inside a literal', '[tr', {}, 'TRUNCATED', 3],
  ['truncated: top-level literal', 'nul', { expect: 'ndjson' }, 'TRUNCATED', 3],
  ['truncated: lone minus', '[-', {}, 'TRUNCATED', 2],
  ['truncated: number ending in a dot', '1.', { expect: 'ndjson' }, 'TRUNCATED', 2],
  ['truncated: exponent', '[1e', {}, 'TRUNCATED', 3],
  ['truncated: second NDJSON record', '{"a":1}\n{"b":', {}, 'TRUNCATED', 13],
  ['truncated: deep', '[[[{"a":[', {}, 'TRUNCATED', 9],
  ['truncated: inside a multi-byte character', bytes('["', [0xc3]), {}, 'TRUNCATED', 3],

  ['UTF-8: overlong C0 80', bytes('["', [0xc0, 0x80], '"]'), {}, 'INVALID_UTF8', 2],
  ['UTF-8: overlong C1 BF', bytes('["', [0xc1, 0xbf], '"]'), {}, 'INVALID_UTF8', 2],
  ['UTF-8: overlong E0 80 80', bytes('["', [0xe0, 0x80, 0x80], '"]'), {}, 'INVALID_UTF8', 3],
  ['UTF-8: overlong E0 9F BF', bytes('["', [0xe0, 0x9f, 0xbf], '"]'), {}, 'INVALID_UTF8', 3],
  ['UTF-8: overlong F0 80 80 80', bytes('["', [0xf0, 0x80, 0x80, 0x80], '"]'), {}, 'INVALID_UTF8', 3],
  ['UTF-8: overlong F0 8F BF BF', bytes('["', [0xf0, 0x8f, 0xbf, 0xbf], '"]'), {}, 'INVALID_UTF8', 3],
  ['UTF-8: surrogate ED A0 80 (U+D800)', bytes('["', [0xed, 0xa0, 0x80], '"]'), {}, 'INVALID_UTF8', 3],
  ['UTF-8: surrogate ED BF BF (U+DFFF)', bytes('["', [0xed, 0xbf, 0xbf], '"]'), {}, 'INVALID_UTF8', 3],
  ['UTF-8: above U+10FFFF (F4 90)', bytes('["', [0xf4, 0x90, 0x80, 0x80], '"]'), {}, 'INVALID_UTF8', 3],
  ['UTF-8: above U+10FFFF (F5)', bytes('["', [0xf5, 0x80, 0x80, 0x80], '"]'), {}, 'INVALID_UTF8', 2],
  ['UTF-8: byte FF', bytes('["', [0xff], '"]'), {}, 'INVALID_UTF8', 2],
  ['UTF-8: stray continuation byte', bytes('["a', [0x80], '"]'), {}, 'INVALID_UTF8', 3],
  ['UTF-8: truncated 2-byte sequence', bytes('["', [0xc3], '"]'), {}, 'INVALID_UTF8', 3],
  ['UTF-8: truncated 3-byte sequence', bytes('["', [0xe2, 0x82], '("]'), {}, 'INVALID_UTF8', 4],
  ['UTF-8: truncated 4-byte sequence', bytes('["', [0xf0, 0x9f, 0x98], '"]'), {}, 'INVALID_UTF8', 5],
  ['UTF-8: bad byte in a key', bytes('{"k', [0xc3, 0x28], '":1}'), {}, 'INVALID_UTF8', 4],
  ['UTF-8: invalid byte outside a string', bytes('[', [0xff], ']'), {}, 'INVALID_UTF8', 1],
  ['UTF-8: invalid sequence outside a string', bytes('[', [0xc3, 0x28], ']'), {}, 'INVALID_UTF8', 2],
  ['UTF-8: body ends inside a character outside a string', bytes('{}', [0xc3]), { expect: 'json' }, 'INVALID_UTF8', 3],
  ['form feed is not whitespace', '[\f1]', {}, 'INVALID_JSON', 1],
  ['vertical tab is not whitespace', '{}\v', { expect: 'json' }, 'TRAILING_DATA', 2],
  ['no-break space is not whitespace', '[\u00a01]', {}, 'INVALID_JSON', 1],
  ['valid UTF-8 outside a string', '[é]', {}, 'INVALID_JSON', 1],
  ['valid UTF-8 as a key', '{é:1}', {}, 'INVALID_JSON', 1],
  ['valid UTF-8 after the value', '{} é', {}, 'TRAILING_DATA', 3],
  ['valid UTF-8 at the start of an NDJSON line', '{}\n€', { expect: 'ndjson' }, 'INVALID_JSON', 3],
  ['valid UTF-8 in a literal', '[tr😀e]', {}, 'INVALID_JSON', 3],
];

t.test('every error code is reported at its exact byte offset, whatever the chunking', async (t) => {
  for (const [name, body, options, code, offset] of errorCases) {
    t.test(name, async (t) => {
      expectError(t, scanAllSplits(t, body, options), code, offset);
    });
  }
});

t.test('error messages say what was expected and what was found', async (t) => {
  t.match(scan('{"a":[1,2,3],"b":}'), { message: "unexpected '}' at byte 17: expected a value" });
  t.match(scan('[1 2]'), { message: /unexpected '2' at byte 3: expected ',' or '\]'/ });
  t.match(scan('{"a":1 "b":2}'), { message: /unexpected '"' at byte 7: expected ',' or '\}'/ });
  t.match(scan('[é]'), { message: /unexpected character 'é' \(U\+00E9\) at byte 1: expected a value/ });
  t.match(scan(bytes('["', [0], '"]')), { message: /NUL byte.*at byte 2.*must be escaped/ });
  t.match(scan(bytes('["', [0xed, 0xa0, 0x80], '"]')), { message: /at byte 3.*surrogate/ });
  t.match(scan(bytes('["', [0xe0, 0x80, 0x80], '"]')), { message: /at byte 3.*overlong/ });
  t.match(scan(bytes('["', [0xf4, 0x90, 0x80, 0x80], '"]')), { message: /at byte 3.*above U\+10FFFF/ });
  t.match(scan('[1,2'), { message: /end of the body at byte 4 inside an array: expected '\]'.*truncated/ });
  t.match(scan('{"a":"x'), { message: /end of the body at byte 7 inside a string: expected the closing '"'/ });
  t.match(scan('1', { expect: 'json' }), { message: /expected a JSON object or array at the top level, found a number/ });
  t.match(scan('{}{}', { expect: 'json' }), { message: /unexpected '\{' at byte 2: expected only whitespace/ });
  t.match(scan('{}{}'), { message: /unexpected '\{' at byte 2: expected only whitespace after the top-level value/ });
  t.match(scan('{}\n{} {}'), { message: /unexpected '\{' at byte 6: .*each NDJSON line must hold exactly one JSON value/ });
  t.match(scan('{\n}{}'), { message: /unexpected '\{' at byte 3: expected only whitespace after the closing '\}'/ });
  t.match(scan(bytes('["', [0xc3, 0x28], '"]')), {
    message: "invalid UTF-8 at byte 3: expected a continuation byte (0x80-0xBF) to complete the character that starts with 0xC3, found '('",
  });
  t.match(scan(bytes('["', [0xff], '"]')), { message: /invalid UTF-8 at byte 2: byte 0xFF cannot start a character/ });
  t.match(scan('{"a":\n1}', { expect: 'ndjson' }), { message: /line feed at byte 5 inside a value: in NDJSON each value must be on a single line/ });
  t.match(scan('[1,[2', { maxDepth: 1 }), { message: "unexpected '[' at byte 3: nesting deeper than 1 levels is not allowed" });
  t.match(scan('123456', { maxLineBytes: 4, expect: 'ndjson' }), { message: /line starting at byte 0 is longer than 4 bytes/ });
  t.match(scan(''), { message: /the body is empty/ });
});

t.test('errors are JsonScanErrors and PipelineErrors, not retriable', async (t) => {
  const scanner = new JsonScanner();
  const error = t.throws(() => scanner.write(Buffer.from('[1,]'))) as JsonScanError;
  t.type(error, JsonScanError);
  t.type(error, PipelineError);
  t.equal(error.name, 'JsonScanError');
  t.equal(error.code, 'INVALID_JSON');
  t.equal(error.offset, 3);
  t.equal(error.retriable, false);
});

t.test('after an error the scanner stays failed and rethrows the same error', async (t) => {
  const scanner = new JsonScanner();
  scanner.write(Buffer.from('{"a":'));
  const error = t.throws(() => scanner.write(Buffer.from('}'))) as JsonScanError;
  t.equal(error.offset, 5);
  t.equal(scanner.bytes, 6);
  t.throws(() => scanner.write(Buffer.from('1}')), error);
  t.equal(
    (() => {
      try {
        scanner.write(Buffer.from('1}'));
      } catch (e) {
        return e;
      }
      return undefined;
    })(),
    error,
    'write() rethrows the identical error object',
  );
  t.equal(
    (() => {
      try {
        scanner.end();
      } catch (e) {
        return e;
      }
      return undefined;
    })(),
    error,
    'end() rethrows the identical error object',
  );

  const truncated = new JsonScanner();
  truncated.write(Buffer.from('[1'));
  const endError = t.throws(() => truncated.end()) as JsonScanError;
  t.equal(endError.code, 'TRUNCATED');
  t.throws(() => truncated.end(), endError);
  t.throws(() => truncated.write(Buffer.from(']')), endError);
});

t.test('chunks may be plain Uint8Arrays', async (t) => {
  const scanner = new JsonScanner({ onRecord: (raw) => t.equal(raw.toString(), '{"a":"é"}') });
  const body = new TextEncoder().encode('[{"a":"é"}]');
  scanner.write(body.subarray(0, 7));
  scanner.write(body.subarray(7));
  t.same(scanner.end(), { format: 'array', records: 1, bytes: body.length });
});

t.test('end() returns the same result twice; write() after end() is refused', async (t) => {
  const scanner = new JsonScanner();
  scanner.write(Buffer.from('[1]'));
  const result = scanner.end();
  t.equal(scanner.end(), result);
  t.throws(() => scanner.write(Buffer.from(' ')), /after end/);
});

t.test('bytes and records progress as chunks arrive', async (t) => {
  const scanner = new JsonScanner();
  t.equal(scanner.bytes, 0);
  t.equal(scanner.records, 0);
  scanner.write(Buffer.from('[1,2'));
  t.equal(scanner.bytes, 4);
  t.equal(scanner.records, 1, 'the number 2 is not complete until a delimiter arrives');
  scanner.write(new Uint8Array(0));
  t.equal(scanner.bytes, 4);
  scanner.write(Buffer.from(',{"a":[3]}'));
  t.equal(scanner.records, 3);
  scanner.write(Buffer.from(']'));
  t.same(scanner.end(), { format: 'array', records: 3, bytes: 15 });
});

t.test('strings: every escape and valid UTF-8 of every length is accepted', async (t) => {
  const body = bytes(
    '["\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00 \\u0000", "é€😀", "',
    [0xc2, 0x80],
    [0xdf, 0xbf],
    [0xe0, 0xa0, 0x80],
    [0xed, 0x9f, 0xbf],
    [0xee, 0x80, 0x80],
    [0xef, 0xbf, 0xbf],
    [0xf0, 0x90, 0x80, 0x80],
    [0xf4, 0x8f, 0xbf, 0xbf],
    '"]',
  );
  const outcome = scanAllSplits(t, body);
  expectOk(t, outcome, 'array', 3);
  t.same(JSON.parse(`[${outcome.raws.map((raw) => Buffer.from(raw, 'latin1').toString('utf8')).join(',')}]`), JSON.parse(body.toString('utf8')));
});

t.test('multi-byte characters split across chunks at every position', async (t) => {
  const body = Buffer.from('{"k€y":"ab😀c€ü日本"}\n{"😀":"x"}');
  const outcome = scanAllSplits(t, body);
  expectOk(t, outcome, 'ndjson', 2);
  t.same(
    outcome.raws.map((raw) => JSON.parse(Buffer.from(raw, 'latin1').toString('utf8'))),
    [{ 'k€y': 'ab😀c€ü日本' }, { '😀': 'x' }],
  );
});

t.test('numbers: the RFC 8259 grammar is accepted', async (t) => {
  const numbers = ['0', '-0', '1', '-1', '10', '1.5', '-0.25', '1e5', '1E+5', '1e-5', '-0.0e0', '2.5E-10', '123456789012345678901234567890'];
  const outcome = scanAllSplits(t, `[${numbers.join(',')}]`);
  expectOk(t, outcome, 'array', numbers.length);
  t.same(outcome.raws, numbers);
  t.same(scan(`${numbers.join('\n')}\n`, { expect: 'ndjson' }).raws, numbers);
  t.same(scan(`[ ${numbers.join(' , ')} ]`).raws, numbers, 'whitespace around numbers');
});

t.test('literals: true, false and null, split anywhere', async (t) => {
  const outcome = scanAllSplits(t, '[true,false,null]\n');
  expectOk(t, outcome, 'array', 3);
  t.same(outcome.raws, ['true', 'false', 'null']);
  expectOk(t, scanAllSplits(t, 'true\nfalse\nnull', { expect: 'ndjson' }), 'ndjson', 3);
});

// ---------------------------------------------------------------------------------------------
// Depth

t.test('10,000 nested [ give NESTING_TOO_DEEP at the 257th, without stack overflow', async (t) => {
  expectError(t, scan('['.repeat(10_000)), 'NESTING_TOO_DEEP', 256);
  expectError(t, scan('['.repeat(10_000) + ']'.repeat(10_000)), 'NESTING_TOO_DEEP', 256);
  expectError(t, scan('{"a":'.repeat(10_000)), 'NESTING_TOO_DEEP', 256 * 5);
  expectError(t, scan('['.repeat(100_000), { maxDepth: 50_000 }), 'NESTING_TOO_DEEP', 50_000);
});

t.test('nesting up to maxDepth is accepted', async (t) => {
  expectOk(t, scan('['.repeat(256) + ']'.repeat(256)), 'array', 1);
  expectOk(t, scan('{"a":'.repeat(256) + '1' + '}'.repeat(256)), 'object', 1);
  expectOk(t, scanAllSplits(t, '[[[1]]]', { maxDepth: 3 }), 'array', 1);
  expectError(t, scanAllSplits(t, '[[[[1]]]]', { maxDepth: 3 }), 'NESTING_TOO_DEEP', 3);
  expectError(t, scanAllSplits(t, '{}\n[{"a":[[1]]}]\n', { maxDepth: 3, expect: 'ndjson' }), 'NESTING_TOO_DEEP', 10);
  expectOk(t, scan('['.repeat(5000) + ']'.repeat(5000), { maxDepth: 5000 }), 'array', 1);
});

// ---------------------------------------------------------------------------------------------
// Line and record length

t.test('maxLineBytes: an NDJSON line longer than the limit is LINE_TOO_LONG where it is crossed', async (t) => {
  const opts = { maxLineBytes: 8 };
  expectOk(t, scanAllSplits(t, '{"a":12}\n{"b":3}\n', opts), 'ndjson', 2);
  expectOk(t, scanAllSplits(t, '{"a":12}\r\n{"b":3}\r\n', opts), 'ndjson', 2);
  expectOk(t, scanAllSplits(t, '{"a":12}', { ...opts, expect: 'ndjson' }), 'ndjson', 1);
  expectError(t, scanAllSplits(t, '{"a":1}\n{"a":123}\n', opts), 'LINE_TOO_LONG', 16);
  expectError(t, scanAllSplits(t, '{"a":12} \n', opts), 'LINE_TOO_LONG', 8);
  expectError(t, scanAllSplits(t, '{"a":12}\r \n', opts), 'LINE_TOO_LONG', 8);
  expectError(t, scanAllSplits(t, '12345678\n123456789\n', { ...opts, expect: 'ndjson' }), 'LINE_TOO_LONG', 17);
  expectError(t, scanAllSplits(t, '{}\n' + ' '.repeat(20) + '\n{}', opts), 'LINE_TOO_LONG', 11);
  const outcome = scanAllSplits(t, '{"a":12}\n{"a":123}\n', opts);
  if (!outcome.ok) t.match(outcome.message, /longer than 8 bytes/);
});

t.test('maxLineBytes: the limit applies to each line anew', async (t) => {
  const body = Array.from({ length: 2000 }, (_, i) => `{"i":${i % 1000}}`).join('\n');
  expectOk(t, scan(body, { maxLineBytes: 11 }), 'ndjson', 2000);
  expectError(t, scan(body + '\n{"i":100000}', { maxLineBytes: 11 }), 'LINE_TOO_LONG', body.length + 12);
});

t.test('maxLineBytes: in an array, each element is limited, not the line', async (t) => {
  const opts = { maxLineBytes: 3 };
  expectOk(t, scanAllSplits(t, '[123,45,"a",[1],{}]', opts), 'array', 5);
  expectOk(t, scanAllSplits(t, '[ 123 , 456 ]', opts), 'array', 2);
  expectError(t, scanAllSplits(t, '[123,4567]', opts), 'LINE_TOO_LONG', 8);
  expectError(t, scanAllSplits(t, '[1234]', opts), 'LINE_TOO_LONG', 4);
  expectError(t, scanAllSplits(t, '["abc"]', opts), 'LINE_TOO_LONG', 4);
  expectError(t, scanAllSplits(t, '[1,{"a":1}]', opts), 'LINE_TOO_LONG', 6);
  const long = JSON.stringify(Array.from({ length: 5000 }, (_, i) => i % 100));
  expectOk(t, scan(long, { maxLineBytes: 2 }), 'array', 5000);
  expectOk(t, scan(long, { maxLineBytes: 2, expect: 'json' }), 'array', 5000);
});

t.test('maxLineBytes: a single object record is limited too', async (t) => {
  expectError(t, scanAllSplits(t, '{"a":"bcdefgh"}', { maxLineBytes: 10, expect: 'json' }), 'LINE_TOO_LONG', 10);
  expectError(t, scanAllSplits(t, '{\n"a":1,\n"b":2\n}', { maxLineBytes: 8 }), 'LINE_TOO_LONG', 8);
  expectOk(t, scanAllSplits(t, ' {"a":"bcdef"} ', { maxLineBytes: 13, expect: 'json' }), 'object', 1);
});

// ---------------------------------------------------------------------------------------------
// onRecord

t.test('onRecord receives the exact bytes of each array element', async (t) => {
  const body = '[ {"a":1} , 2 ,"x\\"y", [1, 2] ,null,\n\t-0.5e1 ]';
  const outcome = scanAllSplits(t, body);
  t.same(outcome.raws, ['{"a":1}', '2', '"x\\"y"', '[1, 2]', 'null', '-0.5e1']);
  t.same(
    outcome.raws.map((raw) => JSON.parse(raw)),
    JSON.parse(body),
  );
});

t.test('onRecord receives each NDJSON value without its line terminator', async (t) => {
  const body = '{"a":1}\r\n\n  {"b":[1,2]}  \n3';
  const outcome = scanAllSplits(t, body);
  t.same(outcome.raws, ['{"a":1}', '{"b":[1,2]}', '3']);
});

t.test('onRecord receives the whole object of an object body', async (t) => {
  const outcome = scanAllSplits(t, ' \n{"a": {"b": 1}}\n ');
  t.same(outcome.raws, ['{"a": {"b": 1}}']);
});

t.test('onRecord: records spanning many chunks are reassembled and not tied to the caller buffer', async (t) => {
  const values = Array.from({ length: 200 }, (_, i) => ({ i, text: 'é'.repeat(i % 37), nested: [i, { deep: 'x'.repeat(i) }] }));
  const body = Buffer.from(JSON.stringify(values));
  const kept: Buffer[] = [];
  const scanner = new JsonScanner({ onRecord: (raw) => kept.push(raw) });
  const scratch = Buffer.alloc(7);
  for (let from = 0; from < body.length; from += 7) {
    const n = body.copy(scratch, 0, from, from + 7);
    scanner.write(scratch.subarray(0, n));
    scratch.fill(0x5a);
  }
  t.same(scanner.end(), { format: 'array', records: 200, bytes: body.length });
  t.same(
    kept.map((raw) => JSON.parse(raw.toString('utf8'))),
    values,
    'kept records still hold their own bytes after the buffer was reused',
  );
});

t.test('onRecord indexes are 0-based and consecutive, and records can be counted without it', async (t) => {
  const indexes: number[] = [];
  const scanner = new JsonScanner({ onRecord: (_raw, index) => indexes.push(index) });
  scanner.write(Buffer.from('1\n2\n3\n'));
  t.same(scanner.end(), { format: 'ndjson', records: 3, bytes: 6 });
  t.same(indexes, [0, 1, 2]);
  const plain = new JsonScanner();
  plain.write(Buffer.from('1\n2\n3\n'));
  t.same(plain.end(), { format: 'ndjson', records: 3, bytes: 6 });
});

t.test('onRecordBounds: each range slices the body to exactly the bytes onRecord receives, whatever the chunking', async (t) => {
  const random = prng(4242);
  const bodies = ['[1, "two" ,{"three":[3]} ,  null,4.5e1]', '{"only": "one", "n": [1, 2]}', '1\n\n  {"a": 1}  \r\n[2,3]\n"x"\n7', ' [ ] '];
  for (let round = 0; round < 40; round++) {
    const values = Array.from({ length: 1 + Math.floor(random() * 12) }, (_, i) => ({ i, s: 'é'.repeat(Math.floor(random() * 5)) }));
    bodies.push(
      round % 2 === 0
        ? JSON.stringify(values, null, round % 4 === 0 ? 2 : 0)
        : values.map((value) => JSON.stringify(value)).join(random() < 0.5 ? '\n' : '\r\n\n'),
    );
  }
  for (const text of bodies) {
    const body = Buffer.from(text);
    const cuts = [...new Set(Array.from({ length: 3 }, () => 1 + Math.floor(random() * Math.max(1, body.length - 1))))]
      .filter((cut) => cut < body.length)
      .sort((a, b) => a - b);
    const raws: string[] = [];
    const slices: string[] = [];
    const scanner = new JsonScanner({
      onRecord: (raw) => raws.push(raw.toString('utf8')),
      onRecordBounds: (index, start, end) => {
        if (index !== slices.length) throw new Error(`bounds of record ${index}, expected ${slices.length}`);
        slices.push(body.subarray(start, end).toString('utf8'));
      },
    });
    let from = 0;
    for (const to of [...cuts, body.length]) {
      scanner.write(body.subarray(from, to));
      from = to;
    }
    scanner.end();
    t.same(slices, raws, `${JSON.stringify(text.slice(0, 40))} cut at ${cuts.join(',')}`);
  }
});

t.test('an exception thrown by onRecord fails the scanner', async (t) => {
  const boom = new Error('boom');
  const scanner = new JsonScanner({
    onRecord: () => {
      throw boom;
    },
  });
  t.throws(() => scanner.write(Buffer.from('[1,2]')), boom);
  t.throws(() => scanner.end(), boom);
});

t.test('invalid options are refused', async (t) => {
  t.throws(() => new JsonScanner({ maxDepth: 0 }), RangeError);
  t.throws(() => new JsonScanner({ maxLineBytes: 0 }), RangeError);
  t.throws(() => new JsonScanner({ maxLineBytes: 1.5 }), RangeError);
  t.throws(() => new JsonScanner({ expect: 'xml' as never }), RangeError);
});

// ---------------------------------------------------------------------------------------------
// Property tests

function randomString(rnd: () => number): string {
  const alphabet = ['a', 'b', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\u0000', '\u001f', 'é', '€', '日', '😀', '\u2028', '\ud7ff', '\ue000', '\uffff'];
  let s = '';
  const length = Math.floor(rnd() * 12);
  for (let k = 0; k < length; k++) s += alphabet[Math.floor(rnd() * alphabet.length)]!;
  return s;
}

function randomValue(rnd: () => number, depth: number): unknown {
  const r = rnd();
  if (depth > 3 || r < 0.45) {
    const kind = Math.floor(rnd() * 7);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return rnd() < 0.5;
      case 2:
        return Math.floor(rnd() * 2000) - 1000;
      case 3:
        return (rnd() - 0.5) * 10 ** Math.floor(rnd() * 40 - 20);
      default:
        return randomString(rnd);
    }
  }
  const size = Math.floor(rnd() * 5);
  if (r < 0.7) return Array.from({ length: size }, () => randomValue(rnd, depth + 1));
  const object: Record<string, unknown> = {};
  for (let k = 0; k < size; k++) object[randomString(rnd)] = randomValue(rnd, depth + 1);
  return object;
}

function randomCuts(rnd: () => number, length: number): number[] {
  const cuts: number[] = [];
  let at = 0;
  for (;;) {
    at += 1 + Math.floor(rnd() < 0.3 ? rnd() * 4 : rnd() * 200);
    if (at >= length) return cuts;
    cuts.push(at);
  }
}

t.test('property: random values as arrays and NDJSON, in random chunks, give the right records', async (t) => {
  const rnd = prng(20240611);
  const problems: string[] = [];
  for (let round = 0; round < 60; round++) {
    const count = Math.floor(rnd() * 12);
    const values = Array.from({ length: count }, () => randomValue(rnd, 0));
    const canonical = values.map((value) => JSON.stringify(value));

    const arrayBody = Buffer.from(rnd() < 0.5 ? JSON.stringify(values) : JSON.stringify(values, null, rnd() < 0.5 ? 2 : '\t'));
    const a = scanCut(arrayBody, {}, randomCuts(rnd, arrayBody.length));
    if (!a.ok || a.format !== 'array' || a.records !== count) problems.push(`array round ${round}: ${JSON.stringify(a)}`);
    else if (a.raws.some((raw, k) => JSON.stringify(JSON.parse(Buffer.from(raw, 'latin1').toString('utf8'))) !== canonical[k])) {
      problems.push(`array round ${round}: records differ`);
    }

    if (count === 0) continue;
    const eol = rnd() < 0.5 ? '\n' : '\r\n';
    const lines = canonical.flatMap((line) => (rnd() < 0.15 ? [line, ' \t'] : [line]));
    const ndjsonBody = Buffer.from(lines.join(eol) + (rnd() < 0.5 ? eol : ''));
    const n = scanCut(ndjsonBody, { expect: 'ndjson' }, randomCuts(rnd, ndjsonBody.length));
    if (!n.ok || n.format !== 'ndjson' || n.records !== count) problems.push(`ndjson round ${round}: ${JSON.stringify(n)}`);
    else if (n.raws.some((raw, k) => JSON.stringify(JSON.parse(Buffer.from(raw, 'latin1').toString('utf8'))) !== canonical[k])) {
      problems.push(`ndjson round ${round}: records differ`);
    }

    // detect: NDJSON whose first value is an object
    const detectBody = Buffer.from(['{"first":true}', ...canonical].join('\n'));
    const d = scanCut(detectBody, {}, randomCuts(rnd, detectBody.length));
    if (!d.ok || d.format !== 'ndjson' || d.records !== count + 1) problems.push(`detect round ${round}: ${JSON.stringify(d)}`);
  }
  t.same(problems, [], 'all random bodies scan to the expected records');
});

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/** What JSON.parse says about a whole body in json mode: accepted iff parseable and an object/array at the top. */
function jsonParseAccepts(body: Buffer): boolean {
  let text: string;
  try {
    text = fatalUtf8.decode(body);
  } catch {
    return false;
  }
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null;
  } catch {
    return false;
  }
}

/** NDJSON per JSON.parse: every line is blank (spaces, tabs, CR) or one JSON value, and one line at least is not blank. */
function ndjsonParseAccepts(body: Buffer): boolean {
  let text: string;
  try {
    text = fatalUtf8.decode(body);
  } catch {
    return false;
  }
  let values = 0;
  for (const line of text.split('\n')) {
    if (/^[ \t\r]*$/.test(line)) continue;
    try {
      JSON.parse(line);
      values++;
    } catch {
      return false;
    }
  }
  return values > 0;
}

t.test('property: random single-byte corruptions are rejected exactly when JSON.parse rejects', async (t) => {
  const rnd = prng(7);
  const interesting = [...'{}[],:"\\ \t\r\n0123456789-+.eEtfnulrsa/'].map((c) => c.charCodeAt(0));
  interesting.push(0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe0, 0xed, 0xf0, 0xf4, 0xf5, 0xff);
  const problems: string[] = [];
  let accepted = 0;
  let rejected = 0;
  for (let round = 0; round < 1500; round++) {
    const ndjson = round % 2 === 1;
    const values = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => randomValue(rnd, 1));
    const original = Buffer.from(ndjson ? values.map((v) => JSON.stringify(v)).join('\n') + '\n' : JSON.stringify(rnd() < 0.5 ? values : { values }));
    const body = Buffer.from(original);
    const position = Math.floor(rnd() * body.length);
    let replacement = rnd() < 0.7 ? interesting[Math.floor(rnd() * interesting.length)]! : Math.floor(rnd() * 256);
    if (replacement === body[position]) replacement = (replacement + 1) & 0xff;
    body[position] = replacement;

    const options: JsonScannerOptions = { expect: ndjson ? 'ndjson' : 'json' };
    const expected = ndjson ? ndjsonParseAccepts(body) : jsonParseAccepts(body);
    const got = scanCut(body, options, []);
    const label = `${options.expect} ${JSON.stringify(body.toString('latin1'))} (byte ${position} -> 0x${replacement.toString(16)})`;
    if (got.ok !== expected) problems.push(`${label}: JSON.parse ${expected ? 'accepts' : 'rejects'}, scanner says ${JSON.stringify(got)}`);
    if (!got.ok && got.code !== 'EMPTY_BODY' && got.offset < position) {
      problems.push(`${label}: error reported at ${got.offset}, before the corrupted byte`);
    }
    if (got.ok && !ndjson) {
      const parsed = JSON.parse(body.toString('utf8')) as unknown;
      const records = Array.isArray(parsed) ? parsed.length : 1;
      if (got.records !== records) problems.push(`${label}: ${got.records} records, JSON.parse finds ${records}`);
    }
    const chunked = scanCut(body, options, randomCuts(rnd, body.length));
    if (JSON.stringify(chunked) !== JSON.stringify(got)) problems.push(`${label}: chunked ${JSON.stringify(chunked)} vs ${JSON.stringify(got)}`);
    if (got.ok) accepted++;
    else rejected++;
  }
  t.same(problems.slice(0, 10), [], 'the scanner agrees with JSON.parse on every corrupted body');
  t.ok(accepted > 50 && rejected > 500, `both outcomes are exercised (${accepted} accepted, ${rejected} rejected)`);
});

t.test('property: every prefix of a valid body is TRUNCATED or valid, never another error', async (t) => {
  const rnd = prng(99);
  const problems: string[] = [];
  for (let round = 0; round < 40; round++) {
    const body = Buffer.from(JSON.stringify({ v: randomValue(rnd, 0), w: [randomValue(rnd, 1)] }));
    for (let length = 1; length < body.length; length++) {
      const got = scanCut(body.subarray(0, length), { expect: 'json' }, []);
      if (got.ok || got.code !== 'TRUNCATED' || got.offset !== length) {
        problems.push(`${JSON.stringify(body.subarray(0, length).toString('latin1'))}: ${JSON.stringify(got)}`);
      }
    }
  }
  t.same(problems.slice(0, 10), []);
});

// ---------------------------------------------------------------------------------------------
// Token handlers: each one's states against every byte, in one chunk and in 1-byte chunks (so
// that every handler is also entered at every byte of its token), with JSON.parse as the oracle.

const ALL_BYTES = Array.from({ length: 256 }, (_, c) => c);

/** Scans `body` whole (json mode) and in 1-byte chunks; a description of the problem if the two differ or JSON.parse disagrees. */
function disagreement(body: Buffer, options: JsonScannerOptions = { expect: 'json' }): string | undefined {
  const whole = scanCut(body, options, []);
  const bytewise = scanCut(body, options, eachSplit(body.length).at(-1) ?? []);
  const label = JSON.stringify(body.toString('latin1'));
  if (JSON.stringify(whole) !== JSON.stringify(bytewise)) return `${label}: ${JSON.stringify(whole)} whole, ${JSON.stringify(bytewise)} in 1-byte chunks`;
  const accepts = options.expect === 'ndjson' ? ndjsonParseAccepts(body) : jsonParseAccepts(body);
  if (whole.ok !== accepts) return `${label}: scanner ${whole.ok ? 'accepts' : `rejects (${whole.code})`}, JSON.parse ${accepts ? 'accepts' : 'rejects'}`;
  return undefined;
}

function disagreements(bodies: Iterable<Buffer>, options?: JsonScannerOptions): string[] {
  const problems: string[] = [];
  for (const body of bodies) {
    const problem = disagreement(body, options);
    if (problem !== undefined) problems.push(problem);
  }
  return problems;
}

t.test('number handler: every number state followed by every byte agrees with JSON.parse', async (t) => {
  // One prefix (or more) ending in each state: minus, zero, integer, dot, fraction, exponent, exponent sign, exponent digits.
  const prefixes = ['-', '0', '-0', '1', '-12', '1.', '0.', '1.5', '1.25', '1e', '0E', '1.5e', '1e+', '1E-', '1e5', '1.5e-10'];
  const bodies = prefixes.flatMap((prefix) => ALL_BYTES.map((c) => bytes(`[${prefix}`, [c], ']')));
  t.same(disagreements(bodies).slice(0, 10), [], `${bodies.length} bodies`);
  // At the end of the body (the number is ended by end()), as NDJSON.
  t.same(
    disagreements(
      prefixes.map((prefix) => Buffer.from(prefix)),
      { expect: 'ndjson' },
    ),
    [],
  );
});

t.test('number handler: an error is at the first byte that can neither continue nor end the number', async (t) => {
  expectError(t, scanAllSplits(t, '[-x]'), 'INVALID_JSON', 2);
  expectError(t, scanAllSplits(t, '[01]'), 'INVALID_JSON', 2);
  expectError(t, scanAllSplits(t, '[1.e5]'), 'INVALID_JSON', 3);
  expectError(t, scanAllSplits(t, '[1e+-5]'), 'INVALID_JSON', 4);
  expectError(t, scanAllSplits(t, '[1ex]'), 'INVALID_JSON', 3);
  expectError(t, scanAllSplits(t, '[1.5.2]'), 'INVALID_JSON', 4);
  expectError(t, scanAllSplits(t, '[-]'), 'INVALID_JSON', 2);
  expectError(t, scanAllSplits(t, '[1e5e5]'), 'INVALID_JSON', 4);
});

t.test('literal handler: every position of true, false and null followed by every byte agrees with JSON.parse', async (t) => {
  const bodies = ['true', 'false', 'null'].flatMap((word) =>
    Array.from({ length: word.length }, (_, k) => word.slice(0, k + 1)).flatMap((prefix) => ALL_BYTES.map((c) => bytes(`[${prefix}`, [c], ']'))),
  );
  t.same(disagreements(bodies).slice(0, 10), [], `${bodies.length} bodies`);
  expectError(t, scanAllSplits(t, '[nul]'), 'INVALID_JSON', 4);
  expectError(t, scanAllSplits(t, '[fals e]'), 'INVALID_JSON', 5);
  expectError(t, scanAllSplits(t, '[truex]'), 'INVALID_JSON', 5);
  expectError(t, scanAllSplits(t, '{"a":tru'), 'TRUNCATED', 8);
});

t.test('string handler: every byte inside a string, after a backslash and in a \\u escape agrees with JSON.parse', async (t) => {
  const inside = ALL_BYTES.map((c) => bytes('["ab', [c], 'cd"]'));
  const escaped = ALL_BYTES.map((c) => bytes('["a\\', [c], 'bcd"]'));
  const hex = [0, 1, 2, 3].flatMap((k) => ALL_BYTES.map((c) => bytes(`["\\u${'0'.repeat(k)}`, [c], `${'0'.repeat(3 - k)}"]`)));
  const keys = ALL_BYTES.map((c) => bytes('{"a', [c], '":1}'));
  t.same(disagreements([...inside, ...escaped, ...hex, ...keys]).slice(0, 10), []);
});

t.test('string handler: strings of every length up to 17 bytes, as values and keys, whatever the chunking', async (t) => {
  // The plain run is tested four bytes at a time and then one at a time: every remainder, and every chunk end within it.
  const words = Array.from({ length: 18 }, (_, k) => 'abcdefghijklmnopq'.slice(0, k));
  const body = `[${words.map((w) => JSON.stringify(w)).join(',')},{${words.map((w, k) => `${JSON.stringify(w)}${k % 2 === 0 ? ':' : ' :'}${k}`).join(',')}}]`;
  const outcome = scanAllSplits(t, body);
  expectOk(t, outcome, 'array', words.length + 1);
  t.same(
    outcome.raws.slice(0, words.length),
    words.map((w) => JSON.stringify(w)),
  );
  expectError(t, scanAllSplits(t, '["abcdefgh\u0001"]'), 'INVALID_JSON', 10);
  expectError(t, scanAllSplits(t, bytes('["abcdefg', [0xc3, 0x28], '"]')), 'INVALID_UTF8', 10);
  expectError(t, scanAllSplits(t, '{"abcdefgh" x}'), 'INVALID_JSON', 12);
});

t.test('structural handlers: every transition between brackets, commas, colons and values, whatever the chunking', async (t) => {
  const valid = [
    '[]',
    '[[]]',
    '[{}]',
    '{}',
    '{"a":[]}',
    '{"a":{}}',
    '[1,"a",[2],{"b":3},true]',
    '{"a":1,"b":"2","c":[3],"d":{"e":null}}',
    '[[1,2],[3,[4,[]]]]',
  ];
  for (const body of valid)
    expectOk(t, scanAllSplits(t, body), body.startsWith('[') ? 'array' : 'object', body.startsWith('[') ? (JSON.parse(body) as unknown[]).length : 1);
  const invalid: Array<[string, JsonScanErrorCode, number]> = [
    ['[1 2]', 'INVALID_JSON', 3],
    ['[1,]', 'INVALID_JSON', 3],
    ['[,1]', 'INVALID_JSON', 1],
    ['[1}', 'INVALID_JSON', 2],
    ['{"a":1]', 'INVALID_JSON', 6],
    ['{"a" 1}', 'INVALID_JSON', 5],
    ['{"a":}', 'INVALID_JSON', 5],
    ['{1:2}', 'INVALID_JSON', 1],
    ['{"a":1,}', 'INVALID_JSON', 7],
    ['{"a":1,2}', 'INVALID_JSON', 7],
    ['{,}', 'INVALID_JSON', 1],
    ['[:]', 'INVALID_JSON', 1],
    ['{"a"::1}', 'INVALID_JSON', 5],
    ['[1]]', 'TRAILING_DATA', 3],
    ['{"a":[1}', 'INVALID_JSON', 7],
  ];
  for (const [body, code, offset] of invalid) expectError(t, scanAllSplits(t, body), code, offset);
});

t.test('whitespace handler: every byte below 0x21 between every two tokens agrees with JSON.parse', async (t) => {
  const tokens = ['[', '1', ',', '{', '"a"', ':', '"b"', ',', '"c"', ':', 'null', '}', ']'];
  const bodies: Buffer[] = [];
  for (let gap = 0; gap <= tokens.length; gap++) {
    for (let c = 0; c <= 0x20; c++) bodies.push(bytes(tokens.slice(0, gap).join(''), [c, c], tokens.slice(gap).join('')));
  }
  t.same(disagreements(bodies).slice(0, 10), [], `${bodies.length} bodies`);
  t.same(
    disagreements(
      bodies.map((body) => bytes(body, '\n', body)),
      { expect: 'ndjson' },
    ).slice(0, 10),
    [],
    'as NDJSON lines',
  );
});
