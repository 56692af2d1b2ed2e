import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { renderErrorCodesDoc } from '../deployments/error-codes-doc.js';
import { errorCodeGroups, errorCodes, errorCodesByGroup, isErrorCode, pgErrorCodes, statusOf } from './error-codes.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const productFolders = ['core', 'ingress', 'monitoring', 'sinks', 'topology', 'schemas', 'examples'];

/** A code literal where codes are written, with the HTTP status beside it when the site sends one. */
interface CodeSite {
  code: string;
  file: string;
  line: number;
  status?: number;
}

const codeLiteral = String.raw`'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)'`;
const anyCode = new RegExp(codeLiteral, 'g');

/** Where codes are written: each pattern's first group holds one code literal, or a union of them. */
const codePositions = [
  // { code: 'X' }, ({ code: 'A' | 'B' }) in a constructor's parameter
  new RegExp(String.raw`\bcode:\s*(${codeLiteral}(?:\s*\|\s*${codeLiteral})*)`, 'g'),
  new RegExp(String.raw`\breason_code:\s*(${codeLiteral})`, 'g'),
  // code: error.code ?? 'X' and error instanceof PipelineError ? error.code : 'X'
  new RegExp(String.raw`\bcode:\s*[\w.]+\s*\?\?\s*(${codeLiteral})`, 'g'),
  new RegExp(String.raw`\?\s*[\w.]+\.code\s*:\s*(${codeLiteral})`, 'g'),
  new RegExp(String.raw`\bnew [A-Z]\w*Error\(\s*(${codeLiteral})`, 'g'),
  new RegExp(String.raw`\bsuper\(\s*(${codeLiteral})`, 'g'),
  // the ingress's and the monitoring's answer helpers: reject(res, 413, 'X'), fail(…)
  new RegExp(String.raw`\b(?:reject|fail|refuse)\(\s*\w+,\s*\d{3},\s*(${codeLiteral})`, 'g'),
  // readonly code = 'X', validationCode = 'X', strayCode: JsonScanErrorCode = 'X'
  new RegExp(String.raw`\b\w*[cC]ode(?:\s*:\s*\w+)?\s*=\s*(${codeLiteral})`, 'g'),
  // type JsonScanErrorCode = | 'A' | 'B';
  /\btype \w*Code\s*=([^;]*);/g,
];

/** A status beside a code: each pattern's groups are (status, code) or (code, status). */
const sendSites: Array<{ pattern: RegExp; statusFirst: boolean }> = [
  { pattern: new RegExp(String.raw`\bsendJson\(\s*\w+,\s*(\d{3}),\s*\{\s*error:\s*\{\s*code:\s*${codeLiteral}`, 'g'), statusFirst: true },
  { pattern: new RegExp(String.raw`\{\s*status:\s*(\d{3}),\s*code:\s*${codeLiteral}`, 'g'), statusFirst: true },
  { pattern: new RegExp(String.raw`\b(?:reject|fail|refuse)\(\s*\w+,\s*(\d{3}),\s*${codeLiteral}`, 'g'), statusFirst: true },
  { pattern: new RegExp(String.raw`\bcode:\s*${codeLiteral},\s*message:[^\n]{0,200}?,\s*status:\s*(\d{3})\s*\}`, 'g'), statusFirst: false },
  { pattern: new RegExp(String.raw`\bnew ReplayError\(\s*${codeLiteral},[\s\S]{0,300}?,\s*(\d{3}),?\s*\)`, 'g'), statusFirst: false },
];

function lineAt(source: string, index: number): number {
  let line = 1;
  for (let i = source.indexOf('\n'); i !== -1 && i < index; i = source.indexOf('\n', i + 1)) line++;
  return line;
}

/** Helpers that answer with one fixed status: function badRequest(state, problem) { sendJson(state, 400, … */
function statusHelpers(source: string): Map<string, number> {
  const helpers = new Map<string, number>();
  for (const match of source.matchAll(/\bfunction (\w+)\([^)]*\)[^{]*\{\s*sendJson\(\s*\w+,\s*(\d{3}),/g)) helpers.set(match[1]!, Number(match[2]));
  return helpers;
}

/** Every code literal of a source file in a code's position, with the status of the sites that send one. */
export function findCodeSites(source: string, file: string): CodeSite[] {
  const sites = new Map<number, CodeSite>();
  const add = (index: number, code: string, status?: number) => {
    const known = sites.get(index);
    if (known !== undefined) {
      if (status !== undefined) known.status = status;
      return;
    }
    sites.set(index, { code, file, line: lineAt(source, index), ...(status === undefined ? {} : { status }) });
  };
  for (const pattern of codePositions) {
    for (const match of source.matchAll(pattern)) {
      const groupText = match[1]!;
      const offset = match.index + match[0].indexOf(groupText);
      for (const literal of groupText.matchAll(anyCode)) add(offset + literal.index, literal[1]!);
    }
  }
  for (const { pattern, statusFirst } of sendSites) {
    for (const match of source.matchAll(pattern)) {
      const [status, code] = statusFirst ? [match[1]!, match[2]!] : [match[2]!, match[1]!];
      add(match.index + match[0].indexOf(`'${code}'`), code, Number(status));
    }
  }
  for (const [helper, status] of statusHelpers(source)) {
    for (const match of source.matchAll(new RegExp(String.raw`\b${helper}\(\s*\w+,\s*\{\s*code:\s*${codeLiteral}`, 'g'))) {
      add(match.index + match[0].indexOf(`'${match[1]!}'`), match[1]!, status);
    }
  }
  for (const match of source.matchAll(/`PG_\$\{|'PG_'/g)) add(match.index, pgErrorCodes.template);
  return [...sites.values()].sort((a, b) => a.line - b.line);
}

function productFiles(folder: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(join(root, folder), { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'testing' && entry.name !== 'node_modules') files.push(...productFiles(path));
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && !entry.name.endsWith('.fixture.ts')) {
      files.push(path);
    }
  }
  return files;
}

const catalogueFile = 'core/error-codes.ts';
const sites = productFolders
  .flatMap(productFiles)
  .filter((file) => file !== catalogueFile)
  .flatMap((file) => findCodeSites(readFileSync(join(root, file), 'utf8'), relative(root, join(root, file))));

const where = (site: CodeSite) => `${site.file}:${site.line}`;

t.test('the scanner finds codes where they are written, with the status beside them', async (t) => {
  const source = [
    "reject(res, 413, 'BODY_TOO_LARGE', 'too big');",
    "sendJson(state, 404, { error: { code: 'IMPORT_NOT_FOUND', message: 'no' } });",
    "return { status: 409, code: 'IMPORT_IN_PROGRESS', message: 'still running' };",
    "throw new PipelineError('ETL_BRAND_NEW', 'a code nobody catalogued');",
    "super('ERR_SOMETHING', message);",
    "const event = { reason_code: 'SOME_REASON' };",
    "export type ThingCode = 'A_CODE' | 'B_CODE';",
    'function badRequest(state, problem) { sendJson(state, 400, { error: problem }); }',
    "badRequest(state, { code: 'INVALID_QUERY', message: 'bad' });",
    "throw new ReplayError('ARCHIVE_OBJECT_MISSING', `gone: ${f(a, b)}`, 410);",
    "const failure = { code: 'REPLAY_FAILED', message: 'did not start', status: 503 };",
    "return error instanceof PipelineError ? error.code : 'UNPROCESSABLE';",
    "finish({ code: error.code ?? 'CONNECTION_FAILED' });",
    "readonly code = 'ERR_USAGE';",
    'reason_code: `PG_${rejected.code}`,',
    "reader.int('INGRESS_PORT', 3000); const x = { env: 'NOT_A_CODE' };",
  ].join('\n');
  const found = findCodeSites(source, 'x.ts').map((site) => `${site.line} ${site.code}${site.status === undefined ? '' : ` ${site.status}`}`);
  t.same(found, [
    '1 BODY_TOO_LARGE 413',
    '2 IMPORT_NOT_FOUND 404',
    '3 IMPORT_IN_PROGRESS 409',
    '4 ETL_BRAND_NEW',
    '5 ERR_SOMETHING',
    '6 SOME_REASON',
    '7 A_CODE',
    '7 B_CODE',
    '9 INVALID_QUERY 400',
    '10 ARCHIVE_OBJECT_MISSING 410',
    '11 REPLAY_FAILED 503',
    '12 UNPROCESSABLE',
    '13 CONNECTION_FAILED',
    '14 ERR_USAGE',
    '15 PG_<SQLSTATE>',
  ]);
  const uncatalogued = findCodeSites(source, 'x.ts').filter((site) => !isErrorCode(site.code) && site.code !== pgErrorCodes.template);
  t.same(
    uncatalogued.map((site) => site.code),
    ['ETL_BRAND_NEW', 'ERR_SOMETHING', 'SOME_REASON', 'A_CODE', 'B_CODE'],
    'a new code is reported as missing from the catalogue',
  );
});

t.test('the scan reads the product source', async (t) => {
  t.ok(sites.length > 80, `${sites.length} code sites`);
  t.ok(new Set(sites.map((site) => site.file)).size > 15, 'in many files');
});

t.test('every code the product writes is in the catalogue', async (t) => {
  const missing = sites.filter((site) => !isErrorCode(site.code) && site.code !== pgErrorCodes.template);
  t.same(
    missing.map((site) => `${where(site)} ${site.code}`),
    [],
    'codes missing from core/error-codes.ts (add each with its status, retriable and meaning)',
  );
});

t.test('every catalogued code is written somewhere in the product (no dead codes)', async (t) => {
  const used = new Set(sites.map((site) => site.code));
  t.same(
    Object.keys(errorCodes).filter((code) => !used.has(code)),
    [],
    'catalogued codes no product file writes',
  );
  t.ok(used.has(pgErrorCodes.template), 'the PG_<SQLSTATE> family is written by the sink');
});

t.test('the catalogue status of each HTTP code is the status it is sent with', async (t) => {
  const wrong = sites
    .filter((site) => site.status !== undefined && isErrorCode(site.code) && statusOf(site.code) !== site.status)
    .map((site) => `${where(site)} sends ${site.code} with ${site.status}, the catalogue says ${String(statusOf(site.code))}`);
  t.same(wrong, []);
  const sent = new Set(sites.filter((site) => site.status !== undefined).map((site) => site.code));
  for (const code of ['IMPORT_NOT_FOUND', 'BODY_TOO_LARGE', 'UNAUTHORIZED', 'INVALID_TENANT', 'REPLAY_FAILED', 'ARCHIVE_OBJECT_MISSING'] as const) {
    t.ok(sent.has(code), `a send site of ${code} was read`);
  }
});

t.test('catalogue entries are well formed', async (t) => {
  for (const [code, info] of Object.entries(errorCodes)) {
    t.match(code, /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/, code);
    t.ok(info.status === null || (info.status >= 400 && info.status <= 599), `${code}: an error status or null`);
    t.ok(info.meaning.length > 10 && !info.meaning.includes('\n'), `${code}: a one-line meaning`);
  }
  const grouped = Object.values(errorCodesByGroup).flatMap((group) => Object.keys(group));
  t.equal(grouped.length, new Set(grouped).size, 'no code is in two groups');
  t.same(Object.keys(errorCodesByGroup), Object.keys(errorCodeGroups), 'every group has a title');
});

t.test('statusOf and the PG_ family', async (t) => {
  t.equal(statusOf('BODY_TOO_LARGE'), 413);
  t.equal(statusOf('IMPORT_NOT_FOUND'), 404);
  t.equal(statusOf('FILE_CORRUPT'), null);
  t.equal(statusOf('PG_23505'), null);
  t.equal(statusOf('ECONNREFUSED'), null, 'not ours');
  t.ok(pgErrorCodes.pattern.test('PG_23505'));
  t.notOk(pgErrorCodes.pattern.test('PG_POOL_MAX'), 'an environment variable is not a database refusal');
});

t.test('docs/error-codes.md is the generated page', async (t) => {
  const committed = readFileSync(join(root, 'docs/error-codes.md'), 'utf8');
  t.equal(committed, renderErrorCodesDoc(), 'run: npx --no-install tsx deployments/error-codes-doc.ts > docs/error-codes.md');
});
