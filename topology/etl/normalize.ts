/**
 * MongoDB extended JSON → plain JSON, for company documents exported with mongoexport
 * (canonical or relaxed mode) and Crunchbase-style date strings.
 *
 * normalizeRecord() returns a new value and never modifies its input. It never throws on
 * odd data: anything it cannot convert safely is kept exactly as it was.
 */

/**
 * Returns a normalised deep copy of `value`. Recursively:
 *
 * - `{"$oid": "<24 hex digits>"}` → the hex string
 * - `{"$date": "<ISO-8601 string>"}`, `{"$date": <millis>}`, `{"$date": {"$numberLong": "<millis>"}}`
 *   → ISO-8601 string in UTC with milliseconds (`2013-12-08T07:15:44.000Z`); an ISO date-time
 *   without an offset is read as UTC (BSON dates are UTC)
 * - `{"$numberLong": "123"}` → 123 when it is a safe integer, else the decimal string
 * - `{"$numberInt": "5"}`, `{"$numberDouble": "1.5"}`, `{"$numberDecimal": "2.50"}` → number
 *   (finite values only; "NaN"/"Infinity" stay wrapped since JSON cannot hold them)
 * - a string in a field whose name ends in `_at` (`created_at`, `updated_at`, ...) written
 *   the Crunchbase way, `"Sat Dec 08 07:15:44 UTC 2007"`, → ISO-8601 string
 *
 * Only an object whose single key is the wrapper key is unwrapped; a wrapper whose value is
 * malformed (`{"$oid": "xyz"}`, `{"$date": "yesterday"}`, Feb 30, ...) is kept unchanged, as
 * is a date string that does not parse. Other values are copied as they are.
 */
export function normalizeRecord(value: unknown): unknown {
  return normalizeValue(value, undefined);
}

/** The upsert key of a record, when it has one (a string `permalink` on an object). */
export function recordIdentity(record: unknown): { permalink: string | undefined } {
  if (isPlainObject(record)) {
    const permalink = record.permalink;
    if (typeof permalink === 'string') return { permalink };
  }
  return { permalink: undefined };
}

function normalizeValue(value: unknown, key: string | undefined): unknown {
  if (typeof value === 'string') {
    return key !== undefined && key.endsWith('_at') ? (parseCrunchbaseDate(value) ?? value) : value;
  }
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => normalizeValue(item, undefined));
  if (!isPlainObject(value)) return value;

  const keys = Object.keys(value);
  if (keys.length === 1) {
    const only = keys[0]!;
    if (only.startsWith('$')) {
      const unwrapped = unwrap(only, value[only]);
      if (unwrapped !== NOT_UNWRAPPED) return unwrapped;
    }
  }
  const out: Record<string, unknown> = {};
  for (const k of keys) setOwn(out, k, normalizeValue(value[k], k));
  return out;
}

const NOT_UNWRAPPED = Symbol('not unwrapped');

function unwrap(wrapper: string, inner: unknown): unknown {
  switch (wrapper) {
    case '$oid':
      return typeof inner === 'string' && /^[0-9a-fA-F]{24}$/.test(inner) ? inner : NOT_UNWRAPPED;
    case '$date':
      return dateWrapperToIso(inner) ?? NOT_UNWRAPPED;
    case '$numberLong': {
      if (typeof inner !== 'string' || !/^-?\d+$/.test(inner)) return NOT_UNWRAPPED;
      const n = Number(inner);
      return Number.isSafeInteger(n) ? n : inner;
    }
    case '$numberInt':
      return typeof inner === 'string' && /^-?\d+$/.test(inner) ? finiteOr(Number(inner)) : NOT_UNWRAPPED;
    case '$numberDouble':
    case '$numberDecimal':
      return typeof inner === 'string' && DECIMAL.test(inner) ? finiteOr(Number(inner)) : NOT_UNWRAPPED;
    default:
      return NOT_UNWRAPPED;
  }
}

/** A plain decimal literal ("1.5", "-2", "1e3", ".5"); "NaN", "Infinity", hex, "" excluded. */
const DECIMAL = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

function finiteOr(n: number): number | typeof NOT_UNWRAPPED {
  return Number.isFinite(n) ? n : NOT_UNWRAPPED;
}

function dateWrapperToIso(inner: unknown): string | undefined {
  if (typeof inner === 'string') return parseIsoDate(inner);
  if (typeof inner === 'number') return millisToIso(inner);
  if (isPlainObject(inner)) {
    const keys = Object.keys(inner);
    if (keys.length === 1 && keys[0] === '$numberLong') {
      const millis = inner.$numberLong;
      if (typeof millis === 'string' && /^-?\d+$/.test(millis)) return millisToIso(Number(millis));
    }
  }
  return undefined;
}

/** The largest distance from the epoch a JavaScript Date can hold. */
const MAX_MILLIS = 8.64e15;

function millisToIso(millis: number): string | undefined {
  if (!Number.isFinite(millis) || Math.abs(millis) > MAX_MILLIS) return undefined;
  return new Date(Math.trunc(millis)).toISOString();
}

const ISO_DATE = /^([+-]\d{6}|\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/** Strict ISO-8601 parsing (calendar checked: no Feb 30, no 24:00, no leap seconds). */
function parseIsoDate(text: string): string | undefined {
  const m = ISO_DATE.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone = 'Z'] = m;
  if (y === '-000000') return undefined;
  let offsetMinutes = 0;
  if (zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = Number(digits.slice(2) || '0');
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = sign * (oh * 60 + om);
  }
  const millis = utcMillis(Number(y), Number(mo), Number(d), Number(h), Number(mi), Number(s), Number(frac.slice(0, 3).padEnd(3, '0')));
  return millis === undefined ? undefined : millisToIso(millis - offsetMinutes * 60_000);
}

const MONTHS: Readonly<Record<string, number>> = {
  Jan: 1,
  Feb: 2,
  Mar: 3,
  Apr: 4,
  May: 5,
  Jun: 6,
  Jul: 7,
  Aug: 8,
  Sep: 9,
  Oct: 10,
  Nov: 11,
  Dec: 12,
};

/**
 * "Sat Dec 08 07:15:44 UTC 2007" (Java's Date.toString(), as in the Crunchbase dump). The day
 * may be one or two digits; the weekday is not checked (the dump's weekdays are not always
 * right); the zone must be UTC or GMT.
 */
const CRUNCHBASE_DATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (?:UTC|GMT) (\d{4})$/;

/** The ISO string for a Crunchbase-style date, or undefined when it does not parse. */
export function parseCrunchbaseDate(text: string): string | undefined {
  const m = CRUNCHBASE_DATE.exec(text);
  if (!m) return undefined;
  const [, mon, d, h, mi, s, y] = m;
  const millis = utcMillis(Number(y), MONTHS[mon!]!, Number(d), Number(h), Number(mi), Number(s), 0);
  return millis === undefined ? undefined : millisToIso(millis);
}

/** Epoch millis of a UTC calendar date-time, or undefined when a field is out of range. */
function utcMillis(year: number, month: number, day: number, hour: number, minute: number, second: number, ms: number): number | undefined {
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, ms);
  const t = date.getTime();
  return Number.isNaN(t) ? undefined : t;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Assignment that also works for a JSON key named "__proto__" (an own property, not the prototype). */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    target[key] = value;
  }
}
