/**
 * Seeded generator of Crunchbase-like company documents in MongoDB export format (NDJSON),
 * for tests and benchmarks that need more data than examples/data/json/companies-sample.ndjson.
 *
 * - Streams: records are produced one at a time by a generator; nothing is kept but a
 *   counter or two, so 80 MB (20,000 records of ~4,000 bytes) costs no memory.
 * - Deterministic: the same options give byte-identical output. Each record has its own
 *   mulberry32 stream seeded from (seed, index); there is no Math.random and no clock.
 * - Knows its answers: every record says whether it meets the record contract
 *   (schemas/company.schema.json, after topology/etl/normalize.ts) and, if not, at which
 *   path(s) topology/etl/validate-record.ts reports it.
 *
 * CLI:
 *   tsx examples/generate/companies.ts --count 20000 --seed 42 [--invalid-every 50]
 *     [--duplicate-every 100] [--tenant acme] [--bytes-per-record 4000] --out file.ndjson
 * writes the file (with backpressure) and prints the summary as JSON on stdout.
 */
import { once } from 'node:events';
import { createWriteStream, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export interface GenerateOptions {
  /** Number of records (lines). */
  count: number;
  /** Any integer; the same seed gives the same bytes. */
  seed: number;
  /** Every n-th record (n, 2n, ...; 1-based) breaks exactly one contract rule, cycling through INVALID_RULES. 0 (default): none. */
  invalidEvery?: number;
  /**
   * Every n-th record (1-based) repeats the permalink (and _id) of an earlier valid record with
   * different content: a database upsert must keep the later one. When that position is an
   * invalid one, the next record is the duplicate instead. 0 (default): none.
   */
  duplicateEvery?: number;
  /** When set, permalinks are prefixed with `<tenant>-` (lower-case letters, digits and '-', at most 32 characters). */
  tenant?: string;
  /** Average length of a line in bytes (UTF-8, without the newline); default 4,000. Lines vary around it; it is a floor-limited target, a record is never shorter than its fields. */
  bytesPerRecord?: number;
}

/** The contract rules broken by invalid records, in the order they are used. */
export const INVALID_RULES = [
  'bad-email',
  'founded-year-out-of-range',
  'founded-year-not-integer',
  'negative-employees',
  'latitude-out-of-range',
  'bad-currency-code',
  'empty-name',
  'permalink-whitespace',
  'missing-permalink',
  'not-an-object',
] as const;

export type InvalidRule = (typeof INVALID_RULES)[number];

export interface GeneratedRecord {
  /** 0-based position in the output. */
  index: number;
  /** One NDJSON line, without the newline. */
  line: string;
  /** The record's permalink (for an invalid record: the one it would have had, even if its line lacks or mangles it). */
  permalink: string;
  /** Whether validateRecord(normalizeRecord(JSON.parse(line))) passes. */
  expectedValid: boolean;
  /** The distinct violation paths the validator reports, sorted ([] when valid). */
  expectedViolationPaths: string[];
  /** For an invalid record, the rule it breaks. */
  brokenRule?: InvalidRule;
  /** For a duplicate, the index of the earlier (valid) record whose permalink it repeats. */
  duplicateOf?: number;
}

export interface GeneratedCompanies {
  /** The options, defaults filled in. */
  options: Required<Omit<GenerateOptions, 'tenant'>> & { tenant: string | undefined };
  /** The records; each iteration generates them afresh (same bytes every time). */
  records: Iterable<GeneratedRecord>;
  /** Just the lines (no newlines); each iteration generates them afresh. */
  lines: Iterable<string>;
}

export interface CompaniesSummary {
  total: number;
  valid: number;
  invalid: number;
  /** Valid records that repeat an earlier valid record's permalink. */
  duplicates: number;
  /** Unique permalinks among valid records: the number of rows a database ends up with. */
  distinctValidPermalinks: number;
}

export const DEFAULT_BYTES_PER_RECORD = 4_000;

/** The generator plus re-iterable views of it. */
export function companies(options: GenerateOptions): GeneratedCompanies {
  const resolved = resolveOptions(options);
  return {
    options: resolved,
    records: { [Symbol.iterator]: () => generateCompanies(resolved) },
    lines: {
      *[Symbol.iterator]() {
        for (const record of generateCompanies(resolved)) yield record.line;
      },
    },
  };
}

/** Yields `count` records, one at a time. */
export function* generateCompanies(options: GenerateOptions): Generator<GeneratedRecord> {
  const o = resolveOptions(options);
  const plan = new Plan(o.invalidEvery, o.duplicateEvery);
  let lastValidOriginal: number | undefined;
  for (let index = 0; index < o.count; index++) {
    const rng = mulberry32(mix(o.seed, index, 1));
    const rule = plan.invalidRule(index);
    if (rule !== undefined) {
      yield invalidRecord(o, index, rule, rng);
      continue;
    }
    let target: number | undefined;
    if (plan.isDuplicateSlot(index) && lastValidOriginal !== undefined) {
      target = plan.pickOriginal(index, rng) ?? lastValidOriginal;
    }
    if (target === undefined) {
      lastValidOriginal = index;
      const doc = companyDocument(identity(o, index), rng);
      yield { index, line: toLine(doc, o, rng), permalink: doc.permalink as string, expectedValid: true, expectedViolationPaths: [] };
    } else {
      const doc = companyDocument(identity(o, target), rng);
      yield {
        index,
        line: toLine(doc, o, rng),
        permalink: doc.permalink as string,
        expectedValid: true,
        expectedViolationPaths: [],
        duplicateOf: target,
      };
    }
  }
}

/** Counts of a run of records (see CompaniesSummary). */
export function summarize(records: Iterable<GeneratedRecord>): CompaniesSummary {
  const summary = new SummaryCounter();
  for (const record of records) summary.add(record);
  return summary.result();
}

/** Incremental form of summarize(), for streams. */
export class SummaryCounter {
  #total = 0;
  #valid = 0;
  #duplicates = 0;
  readonly #permalinks = new Set<string>();

  add(record: GeneratedRecord): void {
    this.#total++;
    if (!record.expectedValid) return;
    this.#valid++;
    if (this.#permalinks.has(record.permalink)) this.#duplicates++;
    else this.#permalinks.add(record.permalink);
  }

  result(): CompaniesSummary {
    return {
      total: this.#total,
      valid: this.#valid,
      invalid: this.#total - this.#valid,
      duplicates: this.#duplicates,
      distinctValidPermalinks: this.#permalinks.size,
    };
  }
}

/**
 * Writes the records as NDJSON (one line each, '\n'-terminated) to `path`, respecting the
 * stream's backpressure, and returns the summary and the number of bytes written.
 */
export async function writeCompanies(path: string, options: GenerateOptions): Promise<CompaniesSummary & { bytes: number }> {
  const out = createWriteStream(path);
  // An error while not waiting on the stream would otherwise be unhandled.
  const failed = new Promise<never>((_, reject) => out.once('error', reject));
  failed.catch(() => undefined);

  const summary = new SummaryCounter();
  let bytes = 0;
  let chunk = '';
  const flush = async (): Promise<void> => {
    const text = chunk;
    chunk = '';
    bytes += Buffer.byteLength(text);
    if (!out.write(text)) await Promise.race([once(out, 'drain'), failed]);
  };
  try {
    for (const record of generateCompanies(options)) {
      summary.add(record);
      chunk += `${record.line}\n`;
      if (chunk.length >= 64 * 1024) await flush();
    }
    if (chunk !== '') await flush();
    out.end();
    await Promise.race([once(out, 'finish'), failed]);
  } catch (error) {
    out.destroy();
    throw error;
  }
  return { ...summary.result(), bytes };
}

/** mulberry32: a tiny, fast 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Options and the plan of which record is what

type Resolved = GeneratedCompanies['options'];

function resolveOptions(options: GenerateOptions): Resolved {
  const { count, seed, invalidEvery = 0, duplicateEvery = 0, tenant, bytesPerRecord = DEFAULT_BYTES_PER_RECORD } = options;
  const check = (name: string, value: number, ok: boolean): void => {
    if (!ok) throw new RangeError(`${name} must be ${name === 'seed' ? 'an integer' : 'a non-negative integer'}, got ${String(value)}`);
  };
  check('count', count, Number.isSafeInteger(count) && count >= 0);
  check('seed', seed, Number.isSafeInteger(seed));
  check('invalidEvery', invalidEvery, Number.isSafeInteger(invalidEvery) && invalidEvery >= 0);
  check('duplicateEvery', duplicateEvery, Number.isSafeInteger(duplicateEvery) && duplicateEvery >= 0);
  check('bytesPerRecord', bytesPerRecord, Number.isSafeInteger(bytesPerRecord) && bytesPerRecord >= 0);
  if (tenant !== undefined && !/^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/.test(tenant)) {
    throw new RangeError(`tenant must be 1-32 lower-case letters, digits or '-' (not at either end), got ${JSON.stringify(tenant)}`);
  }
  return { count, seed, invalidEvery, duplicateEvery, tenant, bytesPerRecord };
}

/** Which index is invalid (and how) or a duplicate: pure functions of the index. */
class Plan {
  constructor(
    private readonly invalidEvery: number,
    private readonly duplicateEvery: number,
  ) {}

  invalidRule(index: number): InvalidRule | undefined {
    const n = index + 1;
    if (this.invalidEvery === 0 || n % this.invalidEvery !== 0) return undefined;
    return INVALID_RULES[(n / this.invalidEvery - 1) % INVALID_RULES.length];
  }

  /** A duplicate position: every duplicateEvery-th, moved one on when that one is invalid. */
  isDuplicateSlot(index: number): boolean {
    const d = this.duplicateEvery;
    if (d === 0 || index === 0 || this.invalidRule(index) !== undefined) return false;
    const n = index + 1;
    return n % d === 0 || (d > 1 && n % d === 1 && this.invalidRule(index - 1) !== undefined);
  }

  /** A random earlier record that is valid and not a duplicate, if one is found quickly. */
  pickOriginal(index: number, rng: () => number): number | undefined {
    let j = Math.floor(rng() * index);
    for (let tries = 0; tries < 16 && j >= 0; tries++, j--) {
      if (this.invalidRule(j) === undefined && !this.isDuplicateSlot(j)) return j;
    }
    return undefined;
  }
}

/** A 32-bit seed from the run's seed, a record index and a stream number (murmur3 finaliser). */
function mix(seed: number, index: number, stream: number): number {
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(Math.floor(seed / 4294967296) | 0, 0x85ebca77)) >>> 0;
  h = (h ^ Math.imul(index | 0, 0xc2b2ae35) ^ Math.imul(Math.floor(index / 4294967296) | 0, 0x27d4eb2f)) >>> 0;
  h = (h ^ Math.imul(stream, 0x165667b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Record content

type Rng = () => number;
type Doc = Record<string, unknown>;

const int = (rng: Rng, min: number, max: number): number => min + Math.floor(rng() * (max - min + 1));
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)]!;
const chance = (rng: Rng, p: number): boolean => rng() < p;

const WORDS = [
  'data',
  'mesh',
  'hub',
  'digg',
  'advent',
  'face',
  'wet',
  'zoom',
  'paint',
  'cloud',
  'fox',
  'lab',
  'stone',
  'river',
  'book',
  'quant',
  'info',
  'net',
  'omni',
  'blue',
];
const NAME_STYLES = ['', '', '', ' Labs', ' Inc', ' Technologies', ' Systems'];
const UNICODE_NAMES = ['Société Générale Labs', 'Zürich Analytics', 'Ñandú Software', '東京 Data', 'Kraków Cloud', 'Ørsted Digital'];
const CATEGORIES = ['web', 'software', 'social', 'mobile', 'enterprise', 'games_video', 'ecommerce', 'advertising', 'network_hosting', 'other', null];
const TAGS = ['wiki', 'seattle', 'social', 'video', 'search', 'analytics', 'saas', 'mobile', 'cloud', 'payments', 'ai'];
const FIRST_NAMES = ['Sridhar', 'Ann', 'Michael', 'Mark', 'Priya', 'Jean', 'Chen', 'Olga', 'Kwame', 'Lucía'];
const LAST_NAMES = ['Vembu', 'Howell', 'Smith', 'Zuckerberg', 'Nakamura', 'Dubois', 'Okafor', 'García', 'Ivanova'];
const TITLES = ['CEO', 'CTO', 'Co-Founder', '', 'VP Engineering', 'Co-Founder and VP, Social and Audience Development', 'Board Member'];
const INVESTORS = [
  ['Sequoia Capital', 'sequoia-capital'],
  ['Greylock', 'greylock'],
  ['Accel Partners', 'accel-partners'],
  ['Benchmark', 'benchmark'],
  ['Index Ventures', 'index-ventures'],
] as const;
const ROUND_CODES = ['angel', 'seed', 'a', 'b', 'c', 'd', 'unattributed', 'debt_round'];
const CURRENCIES = ['USD', 'USD', 'EUR', 'GBP', 'JPY', null];
const CITIES = [
  { city: 'Pleasanton', state_code: 'CA', country_code: 'USA', latitude: 37.692934, longitude: -121.904945 },
  { city: 'Seattle', state_code: 'WA', country_code: 'USA', latitude: 47.603122, longitude: -122.333253 },
  { city: 'London', state_code: null, country_code: 'GBR', latitude: 51.5073, longitude: -0.1277 },
  { city: 'Chennai', state_code: null, country_code: 'IND', latitude: 13.0827, longitude: 80.2707 },
  { city: 'Berlin', state_code: null, country_code: 'DEU', latitude: 52.52, longitude: 13.405 },
  { city: 'São Paulo', state_code: null, country_code: 'BRA', latitude: -23.5505, longitude: -46.6333 },
  { city: 'Sydney', state_code: null, country_code: 'AUS', latitude: -33.8688, longitude: 151.2093 },
  { city: 'Anchorage', state_code: 'AK', country_code: 'USA', latitude: 61.2181, longitude: -149.9003 },
] as const;
const STREETS = ['Main St', 'Broadway', '1st Ave', 'Market St', 'High St'];
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const LOREM =
  'Lorem ipsum dolor sit amet, consectetur adipiscing elit. Sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. ' +
  'Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. ' +
  'Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. ' +
  'Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum. ';

interface Identity {
  index: number;
  /** Permalink without the tenant prefix: also the email/homepage domain label. */
  slug: string;
  permalink: string;
  name: string;
  oid: string;
}

/** The identity of record `index`: its own PRNG stream, so a duplicate can recompute it. */
function identity(o: Resolved, index: number): Identity {
  const rng = mulberry32(mix(o.seed, index, 2));
  const slug = `${pick(rng, WORDS)}${pick(rng, WORDS)}-${index}`;
  const name = chance(rng, 0.05)
    ? `${pick(rng, UNICODE_NAMES)} ${index}`
    : `${capitalize(slug.slice(0, slug.lastIndexOf('-')))}${pick(rng, NAME_STYLES)} ${index}`;
  let oid = '';
  for (let k = 0; k < 24; k++) oid += '0123456789abcdef'[int(rng, 0, 15)];
  return { index, slug, permalink: o.tenant === undefined ? slug : `${o.tenant}-${slug}`, name, oid };
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A valid company document (before the overview is sized). */
function companyDocument(id: Identity, rng: Rng): Doc {
  const site = `${id.slug}.com`;
  const createdMillis = Date.UTC(2005, 0, 1) + Math.floor(rng() * 8 * 365 * 86_400_000);
  const updatedMillis = createdMillis + Math.floor(rng() * 2 * 365 * 86_400_000);
  const foundedYear = chance(rng, 0.4) ? null : int(rng, 1800, 2013);
  const doc: Doc = {
    _id: { $oid: id.oid },
    name: id.name,
    permalink: id.permalink,
    crunchbase_url: `http://www.crunchbase.com/company/${id.permalink}`,
    homepage_url: pick(rng, [`http://${site}`, `https://www.${site}/`, '', null]),
    blog_url: pick(rng, ['', `http://${site}/blog`]),
    blog_feed_url: pick(rng, ['', `http://${site}/blog/feed`]),
    twitter_username: pick(rng, [id.slug, null]),
    category_code: pick(rng, CATEGORIES),
    number_of_employees: chance(rng, 0.4) ? null : int(rng, 0, 50_000),
    founded_year: foundedYear,
    founded_month: chance(rng, 0.5) ? null : int(rng, 1, 12),
    founded_day: chance(rng, 0.6) ? null : int(rng, 1, 31),
    deadpooled_year: chance(rng, 0.95) ? null : int(rng, 2001, 2013),
    tag_list: Array.from({ length: int(rng, 0, 4) }, () => pick(rng, TAGS)).join(', '),
    alias_list: '',
    email_address: pick(rng, [`info@${site}`, `contact@${site}`, '', null]),
    phone_number: pick(rng, ['', `${int(rng, 200, 999)}-${int(rng, 200, 999)}-${int(rng, 1000, 9999)}`]),
    description: pick(rng, ['', 'Technology Platform Company', 'Social network', 'Online marketplace']),
    created_at: dateValue(createdMillis, rng),
    updated_at: dateValue(updatedMillis, rng),
    overview: '',
    image: chance(rng, 0.3) ? null : { available_sizes: [[[150, 75], `assets/images/resized/0000/${int(rng, 1000, 9999)}/${id.slug}.png`]], attribution: null },
    products: Array.from({ length: int(rng, 0, 3) }, (_, k) => ({ name: `Product ${k}`, permalink: `${id.slug}-p${k}` })),
    relationships: Array.from({ length: int(rng, 0, 4) }, () => ({
      is_past: chance(rng, 0.3),
      title: pick(rng, TITLES),
      person: { first_name: pick(rng, FIRST_NAMES), last_name: pick(rng, LAST_NAMES), permalink: `p-${int(rng, 1, 999_999)}` },
    })),
    competitions: [],
    providerships: [],
    total_money_raised: pick(rng, ['$0', '$5M', '€5M', '$12.4M', '$1.2B']),
    funding_rounds: Array.from({ length: int(rng, 0, 3) }, () => fundingRound(rng)),
    investments: [],
    acquisition: chance(rng, 0.85)
      ? null
      : {
          price_amount: chance(rng, 0.5) ? null : int(rng, 1, 500) * 1_000_000,
          price_currency_code: 'USD',
          term_code: null,
          acquired_year: int(rng, 2000, 2013),
          acquired_month: int(rng, 1, 12),
          acquired_day: int(rng, 1, 28),
          acquiring_company: { name: 'Bacon', permalink: 'bacon' },
        },
    acquisitions: [],
    offices: Array.from({ length: int(rng, 0, 3) }, (_, k) => office(rng, k)),
    milestones: [],
    video_embeds: [],
    screenshots: [],
    external_links: [],
    partners: [],
    ipo: chance(rng, 0.9)
      ? null
      : {
          valuation_amount: int(rng, 1, 1000) * 100_000_000,
          valuation_currency_code: 'USD',
          pub_year: int(rng, 1990, 2013),
          pub_month: int(rng, 1, 12),
          pub_day: int(rng, 1, 28),
          stock_symbol: `NASDAQ:${id.slug.slice(0, 4).toUpperCase()}`,
        },
  };
  return doc;
}

/** A date the way the export has them: a Crunchbase string or a MongoDB `$date`. */
function dateValue(millis: number, rng: Rng): unknown {
  const r = rng();
  if (r < 0.45) return crunchbaseDate(millis);
  if (r < 0.9) return { $date: new Date(millis).toISOString() };
  return { $date: { $numberLong: String(millis) } };
}

/** "Sat Dec 08 07:15:44 UTC 2007" (Java's Date.toString() in UTC). */
function crunchbaseDate(millis: number): string {
  const d = new Date(millis);
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]} ${MONTHS[d.getUTCMonth()]} ${two(d.getUTCDate())} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} UTC ${d.getUTCFullYear()}`;
}

function fundingRound(rng: Rng): Doc {
  return {
    id: int(rng, 1, 99_999),
    round_code: pick(rng, ROUND_CODES),
    source_url: pick(rng, ['', 'http://techcrunch.com/x']),
    source_description: '',
    raised_amount: pick(rng, [null, 5250000.5, int(rng, 1, 500) * 100_000]),
    raised_currency_code: pick(rng, CURRENCIES),
    funded_year: chance(rng, 0.5) ? null : int(rng, 1999, 2013),
    funded_month: chance(rng, 0.3) ? null : int(rng, 1, 12),
    funded_day: chance(rng, 0.5) ? null : int(rng, 1, 28),
    investments: Array.from({ length: int(rng, 0, 3) }, () => {
      const [name, permalink] = pick(rng, INVESTORS);
      return { company: null, financial_org: { name, permalink }, person: null };
    }),
  };
}

function office(rng: Rng, k: number): Doc {
  const place = pick(rng, CITIES);
  const located = chance(rng, 0.75);
  return {
    description: k === 0 ? 'HQ' : pick(rng, ['Sales office', null, '']),
    address1: `${int(rng, 1, 9999)} ${pick(rng, STREETS)}`,
    address2: pick(rng, ['', 'Suite 100']),
    zip_code: String(int(rng, 10000, 99999)),
    city: place.city,
    state_code: place.state_code,
    country_code: place.country_code,
    latitude: located ? place.latitude : null,
    longitude: located ? place.longitude : null,
  };
}

/**
 * Serialises `doc` (or `[doc]`) with an overview sized so that the line is about
 * bytesPerRecord bytes on average: most lines are 70-120 % of it, 2 % are 3.45 times it
 * (the real dump has a few very long overviews too), so the mean is bytesPerRecord.
 */
function toLine(doc: Doc, o: Resolved, rng: Rng, wrapInArray = false): string {
  const factor = chance(rng, 0.02) ? 3.45 : 0.7 + 0.5 * rng();
  const target = Math.round(o.bytesPerRecord * factor);
  const value = wrapInArray ? [doc] : doc;
  if ('overview' in doc) {
    doc.overview = '';
    const need = target - Buffer.byteLength(JSON.stringify(value));
    doc.overview = overview(need, rng);
  }
  return JSON.stringify(value);
}

/** An ASCII HTML paragraph of exactly `bytes` bytes ('' when there is no room for one). */
function overview(bytes: number, rng: Rng): string {
  const room = bytes - '<p></p>'.length;
  if (room <= 0) return '';
  const start = int(rng, 0, LOREM.length - 1);
  const text = LOREM.repeat(Math.ceil((start + room) / LOREM.length) + 1).slice(start, start + room);
  return `<p>${text}</p>`;
}

// ---------------------------------------------------------------------------------------------
// Invalid records: each breaks exactly one rule

function invalidRecord(o: Resolved, index: number, rule: InvalidRule, rng: Rng): GeneratedRecord {
  const id = identity(o, index);
  const doc = companyDocument(id, rng);
  let paths: string[];
  switch (rule) {
    case 'bad-email':
      doc.email_address = pick(rng, ['not-an-email', `info@`, `info at ${id.slug}.com`, `@${id.slug}.com`]);
      paths = ['/email_address'];
      break;
    case 'founded-year-out-of-range':
      doc.founded_year = pick(rng, [1799, 2101, 3012, 0, -1]);
      paths = ['/founded_year'];
      break;
    case 'founded-year-not-integer':
      doc.founded_year = pick(rng, [1999.5, '1999', 'nineteen ninety']);
      paths = ['/founded_year'];
      break;
    case 'negative-employees':
      doc.number_of_employees = -int(rng, 1, 1000);
      paths = ['/number_of_employees'];
      break;
    case 'latitude-out-of-range': {
      const offices = doc.offices as Doc[];
      if (offices.length === 0) offices.push(office(rng, 0));
      const k = int(rng, 0, offices.length - 1);
      const bad = offices[k]!;
      bad.latitude = pick(rng, [90.5, -91, 123.456, -180]);
      bad.longitude = 0;
      paths = [`/offices/${k}/latitude`];
      break;
    }
    case 'bad-currency-code': {
      const rounds = doc.funding_rounds as Doc[];
      if (rounds.length === 0) rounds.push(fundingRound(rng));
      const k = int(rng, 0, rounds.length - 1);
      rounds[k]!.raised_currency_code = pick(rng, ['usd', 'US$', 'EURO', 'Dollars', '', 'E']);
      paths = [`/funding_rounds/${k}/raised_currency_code`];
      break;
    }
    case 'empty-name':
      doc.name = pick(rng, ['', ' ', '   ', '\t']);
      paths = ['/name'];
      break;
    case 'permalink-whitespace':
      doc.permalink = pick(rng, [`${id.permalink} x`, ` ${id.permalink}`, id.permalink.replace('-', ' '), `${id.permalink}\t`]);
      paths = ['/permalink'];
      break;
    case 'missing-permalink':
      delete doc.permalink;
      paths = ['/permalink'];
      break;
    case 'not-an-object':
      paths = [''];
      break;
  }
  return {
    index,
    line: toLine(doc, o, rng, rule === 'not-an-object'),
    permalink: id.permalink,
    expectedValid: false,
    expectedViolationPaths: paths,
    brokenRule: rule,
  };
}

// ---------------------------------------------------------------------------------------------
// CLI

const USAGE =
  'usage: tsx examples/generate/companies.ts --count N --seed S [--invalid-every N] [--duplicate-every N] [--tenant T] [--bytes-per-record B] --out FILE';

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      count: { type: 'string' },
      seed: { type: 'string' },
      'invalid-every': { type: 'string' },
      'duplicate-every': { type: 'string' },
      tenant: { type: 'string' },
      'bytes-per-record': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const integer = (name: string, text: string | undefined, fallback?: number): number => {
    if (text === undefined) {
      if (fallback === undefined) throw new RangeError(`--${name} is required\n${USAGE}`);
      return fallback;
    }
    if (!/^-?\d+$/.test(text)) throw new RangeError(`--${name} must be an integer, got ${JSON.stringify(text)}`);
    return Number(text);
  };
  if (values.out === undefined) throw new RangeError(`--out is required\n${USAGE}`);
  const options: GenerateOptions = {
    count: integer('count', values.count),
    seed: integer('seed', values.seed),
    invalidEvery: integer('invalid-every', values['invalid-every'], 0),
    duplicateEvery: integer('duplicate-every', values['duplicate-every'], 0),
    bytesPerRecord: integer('bytes-per-record', values['bytes-per-record'], DEFAULT_BYTES_PER_RECORD),
    ...(values.tenant === undefined ? {} : { tenant: values.tenant }),
  };
  const result = await writeCompanies(values.out, options);
  process.stdout.write(`${JSON.stringify({ ...result, out: values.out })}\n`);
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(entry)).href;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
