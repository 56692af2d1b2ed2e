/**
 * Incremental, byte-level JSON syntax scanner.
 *
 * The HTTP ingress feeds it the body of an upload chunk by chunk, as the bytes arrive, and
 * learns — without ever holding the whole body — whether the body is parseable, what shape it
 * has (one object, one array of records, or NDJSON), how many records it holds, and the exact
 * byte offset of the first problem. A downstream stage reuses it with `onRecord` to split a
 * stored file into the exact bytes of each record.
 *
 * Shapes: `expect: 'json'` takes one object or array; `'ndjson'` one value per line (blank lines
 * and CRLF allowed, scalars allowed); `'detect'` decides on the first value: `[` is an array body,
 * `{` or a scalar followed by values on later lines is NDJSON, a lone `{...}` is an object body
 * and a lone scalar is TOP_LEVEL_SCALAR. Records: 1 for an object, one per element of an array,
 * one per NDJSON value; every record is bounded by `maxLineBytes`, and so is every line while the
 * body may be NDJSON.
 *
 * The scanner only checks syntax (RFC 8259, strict UTF-8); it builds no values. It is a flat state
 * machine over the bytes: numeric states, lookup tables, a Uint8Array as the bracket stack, no
 * per-byte allocation, no recursion and no regular expressions. The state survives between
 * chunks, so a token, an escape or a multi-byte character may be split at any byte.
 */
import { PipelineError } from './errors.js';

/** The shape of a body: one JSON object (1 record), one JSON array (a record per element), NDJSON (a record per line). */
export type BodyFormat = 'object' | 'array' | 'ndjson';
/** What the caller expects: `json` = one object or array, `ndjson` = one value per line, `detect` = either. */
export type ExpectedFormat = 'json' | 'ndjson' | 'detect';
export type JsonScanErrorCode =
  'EMPTY_BODY' | 'INVALID_JSON' | 'INVALID_UTF8' | 'TRUNCATED' | 'TRAILING_DATA' | 'TOP_LEVEL_SCALAR' | 'NESTING_TOO_DEEP' | 'LINE_TOO_LONG';

/** The body is not acceptable; `offset` is the absolute byte offset (0-based, in the whole body) of the problem. */
export class JsonScanError extends PipelineError {
  /** Narrows the inherited `code` (set by PipelineError); `declare` emits no field that would reset it. */
  declare readonly code: JsonScanErrorCode;
  readonly offset: number;

  constructor(code: JsonScanErrorCode, offset: number, message: string) {
    super(code, message);
    this.offset = offset;
  }
}

export interface ScanResult {
  format: BodyFormat;
  records: number;
  bytes: number;
}

export interface JsonScannerOptions {
  /** Default 'detect'. */
  expect?: ExpectedFormat;
  /** Default 256: a `[` or `{` nested deeper than this -> NESTING_TOO_DEEP. */
  maxDepth?: number;
  /**
   * Default 16 MiB. A record (array element, object, NDJSON value) longer than this, or — in
   * ndjson/detect mode, unless the body is an array — a line longer than this (its LF or CRLF
   * excluded) -> LINE_TOO_LONG at the offset of the first byte beyond the limit.
   */
  maxLineBytes?: number;
  /**
   * Receives the exact bytes of each record as soon as it completes (array: the element without
   * the surrounding whitespace and commas; ndjson: the value without the line terminator; object:
   * the object), with its 0-based index. The Buffer is a fresh copy owned by the callee. A record
   * reported here can still be followed by an error that rejects the whole body.
   */
  onRecord?: (raw: Buffer, index: number) => void;
  /**
   * Receives where each record lies as soon as it completes: its 0-based index and its absolute
   * byte range [start, end) in the body, bounded as for `onRecord`. Copies nothing, so it costs
   * next to nothing; the ingress plans the pieces of a file with it.
   */
  onRecordBounds?: (index: number, start: number, end: number) => void;
}

const DEFAULT_MAX_DEPTH = 256;
const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Bytes

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const PLUS = 0x2b;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const COLON = 0x3a;
const UPPER_E = 0x45;
const LBRACKET = 0x5b;
const BACKSLASH = 0x5c;
const RBRACKET = 0x5d;
const LOWER_E = 0x65;
const LOWER_F = 0x66;
const LOWER_N = 0x6e;
const LOWER_T = 0x74;
const LBRACE = 0x7b;
const RBRACE = 0x7d;

function byteTable(test: (c: number) => boolean): Uint8Array {
  const table = new Uint8Array(256);
  for (let c = 0; c < 256; c++) if (test(c)) table[c] = 1;
  return table;
}

const isDigit = (c: number): boolean => c >= DIGIT_0 && c <= DIGIT_9;

/** Bytes a string can hold as they are: printable ASCII except `"` and `\`. */
const STRING_PLAIN = byteTable((c) => c >= 0x20 && c < 0x80 && c !== QUOTE && c !== BACKSLASH);
const HEX_DIGIT = byteTable((c) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66));
/** 1 = a one-character escape (`\" \\ \/ \b \f \n \r \t`), 2 = `\u`. */
const ESCAPE = new Uint8Array(256);
for (const c of '"\\/bfnrt') ESCAPE[c.charCodeAt(0)] = 1;
ESCAPE['u'.charCodeAt(0)] = 2;
const VALUE_START = byteTable((c) => isDigit(c) || '{["-tfn'.includes(String.fromCharCode(c)));
const NUMBER_CHAR = byteTable((c) => isDigit(c) || c === DOT || c === LOWER_E || c === UPPER_E || c === PLUS || c === MINUS);

/**
 * Strict UTF-8 (RFC 3629): for each lead byte, the number of continuation bytes (0 = the byte
 * can never start a sequence) and the allowed range of the first continuation byte, which is what
 * excludes overlong forms (E0, F0), UTF-16 surrogates (ED) and code points above U+10FFFF (F4).
 */
const UTF8_NEED = new Uint8Array(256);
const UTF8_LO = new Uint8Array(256);
const UTF8_HI = new Uint8Array(256);
function utf8Lead(from: number, to: number, need: number, lo: number, hi: number): void {
  for (let c = from; c <= to; c++) {
    UTF8_NEED[c] = need;
    UTF8_LO[c] = lo;
    UTF8_HI[c] = hi;
  }
}
utf8Lead(0xc2, 0xdf, 1, 0x80, 0xbf);
utf8Lead(0xe0, 0xe0, 2, 0xa0, 0xbf);
utf8Lead(0xe1, 0xec, 2, 0x80, 0xbf);
utf8Lead(0xed, 0xed, 2, 0x80, 0x9f);
utf8Lead(0xee, 0xef, 2, 0x80, 0xbf);
utf8Lead(0xf0, 0xf0, 3, 0x90, 0xbf);
utf8Lead(0xf1, 0xf3, 3, 0x80, 0xbf);
utf8Lead(0xf4, 0xf4, 3, 0x80, 0x8f);

/** `true`, `false` and `null` back to back; a literal is scanned as a range of this table. */
const LITERALS = new Uint8Array(Buffer.from('truefalsenull', 'latin1'));

// ---------------------------------------------------------------------------------------------
// States. The structural ones (where whitespace may appear) come first: `state <= S_AFTER_VALUE`.

/** Before the first value (leading whitespace; the BOM is checked here at offset 0). */
const T_START = 0;
/** After a complete top-level value, on the same line (or anywhere, when not line-oriented). */
const T_AFTER = 1;
/** Line-oriented modes: after a complete top-level value and a line feed. */
const T_NEXTLINE = 2;
/** A value must start here (after `[`, `,` in an array, `:`; or re-dispatched from the top level). */
const S_VALUE = 3;
/** After `[`: a value or `]`. */
const S_ARRAY_FIRST = 4;
/** After `{`: a key or `}`. */
const S_OBJECT_FIRST = 5;
/** After `,` in an object: a key. */
const S_OBJECT_KEY = 6;
/** After a key: `:`. */
const S_COLON = 7;
/** After a value inside a container: `,` or the closing bracket. */
const S_AFTER_VALUE = 8;
const S_STRING = 9;
const S_STRING_ESCAPE = 10;
const S_STRING_HEX = 11;
/** Inside a multi-byte UTF-8 sequence (in a string, or a stray one outside strings). */
const S_UTF8 = 12;
const N_MINUS = 13;
const N_ZERO = 14;
const N_INT = 15;
const N_DOT = 16;
const N_FRACTION = 17;
const N_EXPONENT = 18;
const N_EXPONENT_SIGN = 19;
const N_EXPONENT_DIGITS = 20;
const S_LITERAL = 21;
const T_BOM_1 = 22;
const T_BOM_2 = 23;

/** Number states in which the number is complete if the next byte does not continue it. */
function numberCanEnd(state: number): boolean {
  return state === N_ZERO || state === N_INT || state === N_FRACTION || state === N_EXPONENT_DIGITS;
}

const F_UNDECIDED = 0;
const F_OBJECT = 1;
const F_ARRAY = 2;
const F_NDJSON = 3;
/** Still undecided at end() means detect saw one object (a lone scalar was rejected before). */
const FORMAT_NAMES: readonly BodyFormat[] = ['object', 'object', 'array', 'ndjson'];

const IN_ARRAY = 0;
const IN_OBJECT = 1;

/** An offset no body reaches: "no limit". */
const NO_LIMIT = Number.MAX_SAFE_INTEGER;

// ---------------------------------------------------------------------------------------------
// Messages (only built on the error path)

function hex(c: number, width = 2): string {
  return c.toString(16).toUpperCase().padStart(width, '0');
}

function describeByte(c: number): string {
  switch (c) {
    case LF:
      return 'line feed';
    case CR:
      return 'carriage return';
    case TAB:
      return 'tab';
    case SPACE:
      return 'space';
    case 0:
      return 'NUL byte (0x00)';
  }
  if (c > 0x20 && c < 0x7f) return `'${String.fromCharCode(c)}'`;
  return `byte 0x${hex(c)}`;
}

function scalarKind(c: number): string {
  if (c === QUOTE) return 'a string';
  if (c === LOWER_T || c === LOWER_F) return 'a boolean';
  if (c === LOWER_N) return 'null';
  return 'a number';
}

function literalName(start: number): string {
  return start < 4 ? 'true' : start < 9 ? 'false' : 'null';
}

function invalidLeadMessage(c: number, offset: number): string {
  let why: string;
  if (c >= 0x80 && c <= 0xbf) why = 'a continuation byte without a leading byte';
  else if (c === 0xc0 || c === 0xc1) why = 'it would start an overlong encoding';
  else why = 'it would encode a code point above U+10FFFF';
  return `invalid UTF-8 at byte ${offset}: byte 0x${hex(c)} cannot start a character (${why})`;
}

function badContinuationMessage(lead: number, c: number, lo: number, hi: number, offset: number): string {
  const found = describeByte(c);
  if (lo === 0x80 && hi === 0xbf) {
    return `invalid UTF-8 at byte ${offset}: expected a continuation byte (0x80-0xBF) to complete the character that starts with 0x${hex(lead)}, found ${found}`;
  }
  let why = '';
  if (c >= 0x80 && c <= 0xbf) {
    if (lead === 0xe0 || lead === 0xf0) why = ' (an overlong encoding)';
    else if (lead === 0xed) why = ' (a UTF-16 surrogate, U+D800-U+DFFF, encoded in UTF-8)';
    else if (lead === 0xf4) why = ' (a code point above U+10FFFF)';
  }
  return `invalid UTF-8 at byte ${offset}: expected a byte 0x${hex(lo)}-0x${hex(hi)} after 0x${hex(lead)}, found ${found}${why}`;
}

// ---------------------------------------------------------------------------------------------

export class JsonScanner {
  private readonly expect: ExpectedFormat;
  private readonly maxDepth: number;
  private readonly maxLineBytes: number;
  private readonly onRecord: ((raw: Buffer, index: number) => void) | undefined;
  private readonly onRecordBounds: ((index: number, start: number, end: number) => void) | undefined;
  /** Absolute offset of the first byte of the chunk being scanned. */
  private chunkBase = 0;

  private state = T_START;
  private total = 0;
  private recordCount = 0;
  private failure: unknown = undefined;
  private failed = false;
  private result: ScanResult | undefined = undefined;

  // Shape
  private format: number;
  /** Depth at which a value is a record: 1 for an array body, 0 otherwise. */
  private recordDepth = 0;
  /** Newlines end values (ndjson, or detect while the body may still be NDJSON). */
  private lineMode: boolean;
  /** A newline inside a value is an error (the body is known to be NDJSON). */
  private strictLines: boolean;
  /** detect: offset and first byte of a top-level scalar that came first, -1 if none. */
  private firstScalarAt = -1;
  private firstScalarByte = 0;
  /** detect: the first value spanned several lines (so a second value cannot make it NDJSON). */
  private firstMultiline = false;

  // Brackets
  private depth = 0;
  private stack: Uint8Array;

  // Limits, as absolute offsets of the first byte that would be too many
  private lineLimit: number;
  /** The line reached its limit on a CR: only the LF of a CRLF may follow. */
  private lineLimitCr = false;
  private recordLimit = NO_LIMIT;
  private limit: number;

  // Current record
  private recordStart = -1;
  private recordStartLocal = 0;
  private pieces: Buffer[] = [];
  private piecesLength = 0;

  // Token details
  private stringIsKey = false;
  private hexLeft = 0;
  private literalPos = 0;
  private literalEnd = 0;
  private literalStart = 0;
  private utf8Need = 0;
  private utf8Lo = 0;
  private utf8Hi = 0;
  private utf8Lead = 0;
  private utf8CodePoint = 0;
  private utf8Stray = false;
  private strayStart = 0;
  private strayCode: JsonScanErrorCode = 'INVALID_JSON';
  private strayExpected = '';

  constructor(options: JsonScannerOptions = {}) {
    this.expect = options.expect ?? 'detect';
    if (this.expect !== 'json' && this.expect !== 'ndjson' && this.expect !== 'detect') {
      throw new RangeError(`JsonScanner: expect must be 'json', 'ndjson' or 'detect', got ${String(this.expect)}`);
    }
    this.maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isSafeInteger(this.maxDepth) || this.maxDepth < 1) {
      throw new RangeError(`JsonScanner: maxDepth must be a positive integer, got ${this.maxDepth}`);
    }
    if (!Number.isSafeInteger(this.maxLineBytes) || this.maxLineBytes < 1) {
      throw new RangeError(`JsonScanner: maxLineBytes must be a positive integer, got ${this.maxLineBytes}`);
    }
    this.onRecord = options.onRecord;
    this.onRecordBounds = options.onRecordBounds;
    this.format = this.expect === 'ndjson' ? F_NDJSON : F_UNDECIDED;
    this.lineMode = this.expect !== 'json';
    this.strictLines = this.expect === 'ndjson';
    this.lineLimit = this.lineMode ? this.maxLineBytes : NO_LIMIT;
    this.limit = this.lineLimit;
    this.stack = new Uint8Array(Math.min(this.maxDepth, 64));
  }

  /** Bytes fed so far. */
  get bytes(): number {
    return this.total;
  }

  /** Records completed so far. */
  get records(): number {
    return this.recordCount;
  }

  /**
   * Scans the next chunk. Throws a JsonScanError at the first bad byte; the scanner then stays
   * failed and every later call throws the same error. The chunk is not retained.
   */
  write(chunk: Uint8Array): void {
    if (this.failed) throw this.failure;
    if (this.result !== undefined) throw new Error('JsonScanner: write() after end()');
    const n = chunk.length;
    if (n === 0) return;
    const base = this.total;
    this.total = base + n;
    this.chunkBase = base;
    try {
      this.scan(chunk, base, n);
    } catch (error) {
      this.failed = true;
      this.failure = error;
      throw error;
    }
  }

  /** Declares the body complete and returns its shape; throws if it is empty, truncated or not acceptable. */
  end(): ScanResult {
    if (this.failed) throw this.failure;
    if (this.result !== undefined) return this.result;
    try {
      this.result = this.finish();
      return this.result;
    } catch (error) {
      this.failed = true;
      this.failure = error;
      throw error;
    }
  }

  // -------------------------------------------------------------------------------------------

  private scan(buf: Uint8Array, base: number, n: number): void {
    let state = this.state;
    let i = 0;
    let stop = Math.min(n, this.limit - base);

    for (;;) {
      while (i < stop) {
        if (state === S_STRING) {
          // Fast path: plain ASCII up to something interesting.
          while (i < stop && STRING_PLAIN[buf[i]!] === 1) i++;
          if (i >= stop) continue;
          const b = buf[i]!;
          if (b === QUOTE) {
            i++;
            if (this.stringIsKey) {
              // Usually the ':' follows at once.
              if (i < stop && buf[i] === COLON) {
                i++;
                state = S_VALUE;
              } else {
                state = S_COLON;
              }
            } else {
              state = this.valueEnd(buf, i);
              stop = Math.min(n, this.limit - base);
            }
            continue;
          }
          if (b === BACKSLASH) {
            state = S_STRING_ESCAPE;
            i++;
            continue;
          }
          if (b < 0x20) {
            throw this.error(
              'INVALID_JSON',
              base + i,
              `unexpected ${describeByte(b)} at byte ${base + i} inside a string: control characters must be escaped (e.g. \\n, \\u0000)`,
            );
          }
          // b >= 0x80: a multi-byte UTF-8 character.
          const need = UTF8_NEED[b]!;
          if (need === 0) throw this.error('INVALID_UTF8', base + i, invalidLeadMessage(b, base + i));
          if (i + need < stop) {
            // The whole character is in this chunk: validate it in place.
            const lo = UTF8_LO[b]!;
            const hi = UTF8_HI[b]!;
            const b1 = buf[i + 1]!;
            if (b1 < lo || b1 > hi) {
              throw this.error('INVALID_UTF8', base + i + 1, badContinuationMessage(b, b1, lo, hi, base + i + 1));
            }
            for (let k = 2; k <= need; k++) {
              const bk = buf[i + k]!;
              if ((bk & 0xc0) !== 0x80) {
                throw this.error('INVALID_UTF8', base + i + k, badContinuationMessage(b, bk, 0x80, 0xbf, base + i + k));
              }
            }
            i += need + 1;
            continue;
          }
          this.beginUtf8(b, need, false);
          state = S_UTF8;
          i++;
          continue;
        }

        const c = buf[i]!;

        // Whitespace between tokens, in every structural state.
        if (state <= S_AFTER_VALUE && c <= SPACE) {
          if (c === SPACE || c === TAB || c === CR) {
            i++;
            continue;
          }
          if (c === LF) {
            state = this.lineFeed(state, base + i);
            stop = Math.min(n, this.limit - base);
            i++;
            continue;
          }
        }

        switch (state) {
          case S_AFTER_VALUE: {
            const top = this.stack[this.depth - 1];
            if (c === COMMA) {
              i++;
              if (top === IN_ARRAY) {
                state = S_VALUE;
              } else if (i < stop && buf[i] === QUOTE) {
                // Usually the next key follows at once.
                i++;
                this.stringIsKey = true;
                state = S_STRING;
              } else {
                state = S_OBJECT_KEY;
              }
              continue;
            }
            if ((c === RBRACKET && top === IN_ARRAY) || (c === RBRACE && top === IN_OBJECT)) {
              this.depth--;
              i++;
              state = this.valueEnd(buf, i);
              stop = Math.min(n, this.limit - base);
              continue;
            }
            state = this.unexpected(
              buf,
              base,
              i,
              'INVALID_JSON',
              top === IN_ARRAY ? "expected ',' or ']' after an array element" : "expected ',' or '}' after an object member",
            );
            i++;
            continue;
          }

          case S_VALUE: {
            if (VALUE_START[c] !== 1) {
              state = this.unexpected(buf, base, i, 'INVALID_JSON', 'expected a value');
              i++;
              continue;
            }
            if (this.depth === this.recordDepth) {
              this.startRecord(base, i);
              stop = Math.min(n, this.limit - base);
            }
            if (c === QUOTE) {
              this.stringIsKey = false;
              state = S_STRING;
            } else if (c > DIGIT_0 && c <= DIGIT_9) {
              state = N_INT;
            } else if (c === DIGIT_0) {
              state = N_ZERO;
            } else if (c === LBRACE) {
              this.push(IN_OBJECT, base + i);
              state = S_OBJECT_FIRST;
            } else if (c === LBRACKET) {
              this.push(IN_ARRAY, base + i);
              state = S_ARRAY_FIRST;
            } else if (c === MINUS) {
              state = N_MINUS;
            } else {
              const start = c === LOWER_T ? 0 : c === LOWER_F ? 4 : 9;
              this.literalStart = start;
              this.literalPos = start + 1;
              this.literalEnd = start === 4 ? 9 : start + 4;
              state = S_LITERAL;
            }
            i++;
            continue;
          }

          case S_OBJECT_KEY:
          case S_OBJECT_FIRST: {
            if (c === QUOTE) {
              this.stringIsKey = true;
              state = S_STRING;
              i++;
              continue;
            }
            if (c === RBRACE && state === S_OBJECT_FIRST) {
              this.depth--;
              i++;
              state = this.valueEnd(buf, i);
              stop = Math.min(n, this.limit - base);
              continue;
            }
            state = this.unexpected(
              buf,
              base,
              i,
              'INVALID_JSON',
              state === S_OBJECT_FIRST ? "expected a string key or '}'" : "expected a string key after ','",
            );
            i++;
            continue;
          }

          case S_COLON: {
            if (c === COLON) {
              state = S_VALUE;
              i++;
              continue;
            }
            state = this.unexpected(buf, base, i, 'INVALID_JSON', "expected ':' after the object key");
            i++;
            continue;
          }

          case S_ARRAY_FIRST: {
            if (c === RBRACKET) {
              this.depth--;
              i++;
              state = this.valueEnd(buf, i);
              stop = Math.min(n, this.limit - base);
              continue;
            }
            state = S_VALUE; // re-dispatch this byte
            continue;
          }

          case N_INT:
          case N_FRACTION:
          case N_EXPONENT_DIGITS: {
            while (i < stop && isDigit(buf[i]!)) i++;
            if (i >= stop) continue;
            const b = buf[i]!;
            if (b === DOT && state === N_INT) {
              state = N_DOT;
              i++;
              continue;
            }
            if ((b === LOWER_E || b === UPPER_E) && state !== N_EXPONENT_DIGITS) {
              state = N_EXPONENT;
              i++;
              continue;
            }
            // The number ended before this byte, which the next state handles.
            state = this.valueEnd(buf, i);
            stop = Math.min(n, this.limit - base);
            continue;
          }

          case N_ZERO: {
            if (c === DOT) {
              state = N_DOT;
              i++;
              continue;
            }
            if (c === LOWER_E || c === UPPER_E) {
              state = N_EXPONENT;
              i++;
              continue;
            }
            if (isDigit(c)) {
              throw this.error(
                'INVALID_JSON',
                base + i,
                `unexpected ${describeByte(c)} at byte ${base + i}: a number cannot have a leading zero (expected '.', 'e' or the end of the number)`,
              );
            }
            state = this.valueEnd(buf, i);
            stop = Math.min(n, this.limit - base);
            continue;
          }

          case N_MINUS:
          case N_DOT:
          case N_EXPONENT_SIGN: {
            if (isDigit(c)) {
              state = state === N_MINUS ? (c === DIGIT_0 ? N_ZERO : N_INT) : state === N_DOT ? N_FRACTION : N_EXPONENT_DIGITS;
              i++;
              continue;
            }
            state = this.unexpected(
              buf,
              base,
              i,
              'INVALID_JSON',
              state === N_MINUS
                ? "expected a digit after '-'"
                : state === N_DOT
                  ? 'expected a digit after the decimal point'
                  : 'expected a digit in the exponent',
            );
            i++;
            continue;
          }

          case N_EXPONENT: {
            if (isDigit(c)) {
              state = N_EXPONENT_DIGITS;
              i++;
              continue;
            }
            if (c === PLUS || c === MINUS) {
              state = N_EXPONENT_SIGN;
              i++;
              continue;
            }
            state = this.unexpected(buf, base, i, 'INVALID_JSON', "expected a digit, '+' or '-' in the exponent");
            i++;
            continue;
          }

          case S_LITERAL: {
            if (c === LITERALS[this.literalPos]) {
              i++;
              if (++this.literalPos === this.literalEnd) {
                state = this.valueEnd(buf, i);
                stop = Math.min(n, this.limit - base);
              }
              continue;
            }
            state = this.unexpected(buf, base, i, 'INVALID_JSON', `expected '${literalName(this.literalStart)}'`);
            i++;
            continue;
          }

          case S_STRING_ESCAPE: {
            const kind = ESCAPE[c];
            if (kind === 1) {
              state = S_STRING;
            } else if (kind === 2) {
              this.hexLeft = 4;
              state = S_STRING_HEX;
            } else {
              throw this.error(
                'INVALID_JSON',
                base + i,
                `invalid escape: unexpected ${describeByte(c)} after '\\' at byte ${base + i}: expected one of " \\ / b f n r t u`,
              );
            }
            i++;
            continue;
          }

          case S_STRING_HEX: {
            if (HEX_DIGIT[c] !== 1) {
              throw this.error(
                'INVALID_JSON',
                base + i,
                `unexpected ${describeByte(c)} at byte ${base + i}: expected a hexadecimal digit in a \\u escape (4 are required)`,
              );
            }
            if (--this.hexLeft === 0) state = S_STRING;
            i++;
            continue;
          }

          case S_UTF8: {
            if (c < this.utf8Lo || c > this.utf8Hi) {
              throw this.error('INVALID_UTF8', base + i, badContinuationMessage(this.utf8Lead, c, this.utf8Lo, this.utf8Hi, base + i));
            }
            this.utf8CodePoint = (this.utf8CodePoint << 6) | (c & 0x3f);
            this.utf8Lo = 0x80;
            this.utf8Hi = 0xbf;
            i++;
            if (--this.utf8Need === 0) {
              if (this.utf8Stray) throw this.strayError();
              state = S_STRING;
            }
            continue;
          }

          case T_AFTER: {
            state = this.unexpected(buf, base, i, 'TRAILING_DATA', this.trailingExpectation());
            i++;
            continue;
          }

          case T_NEXTLINE: {
            if (VALUE_START[c] === 1) {
              this.nextLineValue(base + i);
              state = S_VALUE; // re-dispatch this byte
              continue;
            }
            if (this.format === F_UNDECIDED) {
              state = this.unexpected(
                buf,
                base,
                i,
                'TRAILING_DATA',
                'expected only whitespace after the top-level value, or another JSON value on its own line (NDJSON)',
              );
            } else {
              state = this.unexpected(buf, base, i, 'INVALID_JSON', 'expected a JSON value at the start of the line');
            }
            i++;
            continue;
          }

          case T_START: {
            if (c === 0xef && base + i === 0) {
              state = T_BOM_1;
              i++;
              continue;
            }
            this.firstValue(c, base + i);
            stop = Math.min(n, this.limit - base);
            state = S_VALUE; // re-dispatch this byte
            continue;
          }

          case T_BOM_1: {
            if (c === 0xbb) {
              state = T_BOM_2;
              i++;
              continue;
            }
            // Not a BOM: EF is then the lead of some other character, which is not JSON.
            this.beginStray(0xef, 0, 'INVALID_JSON', 'expected a value');
            state = S_UTF8; // re-dispatch this byte as its continuation
            continue;
          }

          case T_BOM_2: {
            if (c === 0xbf) {
              state = T_START;
              i++;
              continue;
            }
            this.beginStray(0xef, 0, 'INVALID_JSON', 'expected a value');
            this.utf8Need = 1;
            this.utf8Lo = 0x80;
            this.utf8Hi = 0xbf;
            this.utf8CodePoint = (0x0f << 6) | (0xbb & 0x3f);
            state = S_UTF8;
            continue;
          }

          default:
            throw new Error(`JsonScanner: internal error, unknown state ${state}`);
        }
      }

      if (i >= n) break;
      // i === stop < n: the byte at i is the first one past the line or record limit.
      this.crossLimit(buf[i]!, base + i, state);
      stop = Math.min(n, this.limit - base);
    }

    this.state = state;
    this.endChunk(buf, n);
  }

  /** If the current record continues in the next chunk and onRecord wants it, keep a copy of its bytes in this one. */
  private endChunk(buf: Uint8Array, n: number): void {
    if (this.recordStart < 0 || this.onRecord === undefined) return;
    const piece = Buffer.allocUnsafe(n - this.recordStartLocal);
    piece.set(buf.subarray(this.recordStartLocal, n));
    this.pieces.push(piece);
    this.piecesLength += piece.length;
    this.recordStartLocal = 0;
  }

  private finish(): ScanResult {
    let state = this.state;
    const total = this.total;
    if (state === T_START) {
      throw this.error('EMPTY_BODY', 0, 'the body is empty: expected a JSON object, an array or NDJSON records');
    }
    if (state === T_BOM_1 || state === T_BOM_2 || (state === S_UTF8 && this.utf8Stray)) {
      throw this.error(
        'INVALID_UTF8',
        total,
        `invalid UTF-8 at byte ${total}: the body ends inside a multi-byte character that started at byte ${state === S_UTF8 ? this.strayStart : 0}`,
      );
    }
    if (numberCanEnd(state) && this.depth === 0) state = this.valueEnd(null, 0);
    if (state !== T_AFTER && state !== T_NEXTLINE) {
      throw this.error('TRUNCATED', total, `unexpected end of the body at byte ${total} ${this.openThing(state)}; the body looks truncated`);
    }
    if (this.format === F_UNDECIDED && this.firstScalarAt >= 0) {
      throw this.error(
        'TOP_LEVEL_SCALAR',
        this.firstScalarAt,
        `the body is a single JSON scalar (${scalarKind(this.firstScalarByte)}) at byte ${this.firstScalarAt}: expected a JSON object, an array or NDJSON records`,
      );
    }
    return { format: FORMAT_NAMES[this.format]!, records: this.recordCount, bytes: total };
  }

  /** What is still open at the end of a truncated body, and what would close it. */
  private openThing(state: number): string {
    if (state >= S_STRING && state <= S_UTF8) return `inside a string: expected the closing '"'`;
    if (state >= N_MINUS && state <= N_EXPONENT_DIGITS && !numberCanEnd(state)) return 'inside a number: expected a digit';
    if (state === S_LITERAL) return `inside the literal '${literalName(this.literalStart)}'`;
    const top = this.stack[this.depth - 1];
    const levels = this.depth > 1 ? ` (${this.depth} brackets are still open)` : '';
    return top === IN_ARRAY ? `inside an array: expected ']'${levels}` : `inside an object: expected '}'${levels}`;
  }

  // ---- shape --------------------------------------------------------------------------------

  /** The first non-whitespace byte of the body decides (or checks) the shape. */
  private firstValue(c: number, offset: number): void {
    if (c === LBRACKET) {
      if (this.expect !== 'ndjson') {
        this.format = F_ARRAY;
        this.recordDepth = 1;
        this.lineMode = false;
        this.lineLimit = NO_LIMIT;
        this.limit = this.recordLimit;
      }
    } else if (c === LBRACE) {
      if (this.expect === 'json') this.format = F_OBJECT;
    } else if (VALUE_START[c] === 1) {
      if (this.expect === 'json') {
        throw this.error(
          'TOP_LEVEL_SCALAR',
          offset,
          `unexpected ${describeByte(c)} at byte ${offset}: expected a JSON object or array at the top level, found ${scalarKind(c)}`,
        );
      }
      if (this.expect === 'detect') {
        this.firstScalarAt = offset;
        this.firstScalarByte = c;
      }
    }
    // Anything else is reported by S_VALUE ("expected a value").
  }

  /** A value starts on a later line than the previous top-level value. */
  private nextLineValue(offset: number): void {
    if (this.format !== F_UNDECIDED) return;
    if (this.firstMultiline) {
      throw this.error(
        'TRAILING_DATA',
        offset,
        `unexpected second JSON value at byte ${offset}: the first value spans several lines, so the body is neither one JSON document nor NDJSON; several values must be one per line (NDJSON)`,
      );
    }
    this.format = F_NDJSON;
    this.strictLines = true;
  }

  private trailingExpectation(): string {
    if (this.format === F_NDJSON) return 'expected the end of the line: each NDJSON line must hold exactly one JSON value';
    if (this.format === F_UNDECIDED && this.firstScalarAt < 0 && this.firstMultiline) {
      return "expected only whitespace after the closing '}' of the top-level object";
    }
    if (this.format === F_UNDECIDED) {
      return 'expected only whitespace after the top-level value: a JSON body holds exactly one value, NDJSON one value per line';
    }
    return this.format === F_ARRAY
      ? "expected only whitespace after the closing ']' of the top-level array"
      : "expected only whitespace after the closing '}' of the top-level object";
  }

  private lineFeed(state: number, offset: number): number {
    if (state === T_AFTER) {
      if (!this.lineMode) return state;
      this.newLine(offset);
      return T_NEXTLINE;
    }
    if (state === T_START || state === T_NEXTLINE) {
      if (this.lineMode) this.newLine(offset);
      return state;
    }
    // Between tokens inside a value.
    if (this.strictLines) {
      throw this.error('INVALID_JSON', offset, `unexpected line feed at byte ${offset} inside a value: in NDJSON each value must be on a single line`);
    }
    if (this.lineMode) {
      this.firstMultiline = true;
      this.newLine(offset);
    }
    return state;
  }

  // ---- brackets -----------------------------------------------------------------------------

  private push(kind: number, offset: number): void {
    const depth = this.depth + 1;
    if (depth > this.maxDepth) {
      throw this.error(
        'NESTING_TOO_DEEP',
        offset,
        `unexpected ${kind === IN_ARRAY ? "'['" : "'{'"} at byte ${offset}: nesting deeper than ${this.maxDepth} levels is not allowed`,
      );
    }
    if (depth > this.stack.length) {
      const grown = new Uint8Array(Math.min(this.maxDepth, this.stack.length * 2));
      grown.set(this.stack);
      this.stack = grown;
    }
    this.stack[depth - 1] = kind;
    this.depth = depth;
  }

  // ---- records and limits -------------------------------------------------------------------

  private startRecord(base: number, i: number): void {
    this.recordStart = base + i;
    this.recordStartLocal = i;
    this.recordLimit = base + i + this.maxLineBytes;
    this.limit = Math.min(this.lineLimit, this.recordLimit);
  }

  /** A value ended just before local offset `end`; returns the state that follows it. */
  private valueEnd(buf: Uint8Array | null, end: number): number {
    if (this.depth === this.recordDepth) this.recordDone(buf, end);
    return this.depth === 0 ? T_AFTER : S_AFTER_VALUE;
  }

  private recordDone(buf: Uint8Array | null, end: number): void {
    const index = this.recordCount++;
    // A value ended by end() (buf null: a number at the end of the body) ends at the body's end.
    this.onRecordBounds?.(index, this.recordStart, buf === null ? this.total : this.chunkBase + end);
    this.recordStart = -1;
    this.recordLimit = NO_LIMIT;
    this.limit = this.lineLimit;
    const onRecord = this.onRecord;
    if (onRecord === undefined) return;
    const tail = buf === null ? 0 : end - this.recordStartLocal;
    const raw = Buffer.allocUnsafe(this.piecesLength + tail);
    let at = 0;
    for (const piece of this.pieces) {
      raw.set(piece, at);
      at += piece.length;
    }
    if (buf !== null && tail > 0) raw.set(buf.subarray(this.recordStartLocal, end), at);
    this.pieces = [];
    this.piecesLength = 0;
    onRecord(raw, index);
  }

  private newLine(lineFeedOffset: number): void {
    this.lineLimit = lineFeedOffset + 1 + this.maxLineBytes;
    this.lineLimitCr = false;
    this.limit = Math.min(this.lineLimit, this.recordLimit);
  }

  /** The byte `c` at `offset` is the first one past the line limit or the record limit. */
  private crossLimit(c: number, offset: number, state: number): void {
    if (this.lineLimit === offset) {
      if (c === LF) {
        this.lineLimit = NO_LIMIT; // the line feed starts a new line
      } else if (c === CR && !this.lineLimitCr) {
        // Possibly a CRLF terminator, which is not part of the line: the next byte must be the LF.
        this.lineLimitCr = true;
        this.lineLimit = offset + 1;
      } else {
        const crossed = this.lineLimitCr ? offset - 1 : offset;
        throw this.error(
          'LINE_TOO_LONG',
          crossed,
          `line too long: the line starting at byte ${crossed - this.maxLineBytes} is longer than ${this.maxLineBytes} bytes (limit crossed at byte ${crossed})`,
        );
      }
    }
    if (this.recordLimit === offset) {
      // A number ends at the first byte that cannot continue it: that byte is not part of the record.
      if (!(numberCanEnd(state) && NUMBER_CHAR[c] !== 1)) {
        throw this.error(
          'LINE_TOO_LONG',
          offset,
          `record too long: the record starting at byte ${this.recordStart} is longer than ${this.maxLineBytes} bytes (limit crossed at byte ${offset})`,
        );
      }
      this.recordLimit = NO_LIMIT;
    }
    this.limit = Math.min(this.lineLimit, this.recordLimit);
  }

  // ---- errors -------------------------------------------------------------------------------

  private error(code: JsonScanErrorCode, offset: number, message: string): JsonScanError {
    return new JsonScanError(code, offset, message);
  }

  private beginUtf8(lead: number, need: number, stray: boolean): void {
    this.utf8Lead = lead;
    this.utf8Need = need;
    this.utf8Lo = UTF8_LO[lead]!;
    this.utf8Hi = UTF8_HI[lead]!;
    this.utf8CodePoint = lead & (need === 1 ? 0x1f : need === 2 ? 0x0f : 0x07);
    this.utf8Stray = stray;
  }

  /**
   * The byte at `i` cannot appear here. An ASCII byte is reported at once with `code`. A byte
   * >= 0x80 is reported as INVALID_UTF8 if it cannot start a character; otherwise the rest of the
   * character is validated first (it may be in the next chunk): an invalid one is INVALID_UTF8 at
   * the offending byte, a valid one is reported with `code` at its first byte (see strayError).
   * Returns the state that validates the rest of the character.
   */
  private unexpected(buf: Uint8Array, base: number, i: number, code: JsonScanErrorCode, expected: string): number {
    const c = buf[i]!;
    const offset = base + i;
    if (c < 0x80) throw this.error(code, offset, `unexpected ${describeByte(c)} at byte ${offset}: ${expected}`);
    const need = UTF8_NEED[c]!;
    if (need === 0) throw this.error('INVALID_UTF8', offset, invalidLeadMessage(c, offset));
    this.beginStray(c, offset, code, expected);
    return S_UTF8;
  }

  private beginStray(lead: number, offset: number, code: JsonScanErrorCode, expected: string): void {
    this.beginUtf8(lead, UTF8_NEED[lead]!, true);
    this.strayStart = offset;
    this.strayCode = code;
    this.strayExpected = expected;
  }

  private strayError(): JsonScanError {
    const cp = this.utf8CodePoint;
    const offset = this.strayStart;
    return this.error(this.strayCode, offset, `unexpected character '${String.fromCodePoint(cp)}' (U+${hex(cp, 4)}) at byte ${offset}: ${this.strayExpected}`);
  }
}
