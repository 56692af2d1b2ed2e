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
const WHITESPACE = byteTable((c) => c === SPACE || c === TAB || c === CR || c === LF);
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
/** Where the literal starting with a byte starts in LITERALS, and, by that start, where it ends. */
const LITERAL_AT = new Uint8Array(256);
LITERAL_AT[LOWER_T] = 0;
LITERAL_AT[LOWER_F] = 4;
LITERAL_AT[LOWER_N] = 9;
const LITERAL_END = new Uint8Array(10);
LITERAL_END[0] = 4;
LITERAL_END[4] = 9;
LITERAL_END[9] = 13;

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
/** Inside a multi-byte UTF-8 character in a string. */
const S_UTF8 = 12;
/** A value that is a number starts at this byte (number() scans it with the rest of the number). */
const N_START = 13;
const N_MINUS = 14;
const N_ZERO = 15;
const N_INT = 16;
const N_DOT = 17;
const N_FRACTION = 18;
const N_EXPONENT = 19;
const N_EXPONENT_SIGN = 20;
const N_EXPONENT_DIGITS = 21;
const S_LITERAL = 22;
const T_BOM_1 = 23;
const T_BOM_2 = 24;
/** After a byte >= 0x80 outside strings: the rest of its character is validated before it is reported (see unexpected). */
const S_STRAY = 25;
/** A value that is a literal starts at this byte (literal() scans it with the rest of the literal). */
const S_LITERAL_START = 26;

/** Number states in which the number is complete if the next byte does not continue it. */
function numberCanEnd(state: number): boolean {
  return state === N_ZERO || state === N_INT || state === N_FRACTION || state === N_EXPONENT_DIGITS;
}

/** In NUMBER_NEXT: the byte can neither continue nor end the number. */
const NUMBER_BAD = 0;
/** In NUMBER_NEXT: the number is complete before the byte. */
const NUMBER_ENDS = 1;
/**
 * The number grammar as a table: NUMBER_NEXT[(state - N_START) << 8 | byte] is the state after
 * the byte, NUMBER_ENDS or NUMBER_BAD, so that the loop over a number is one load per byte.
 */
const NUMBER_NEXT = new Uint8Array((N_EXPONENT_DIGITS - N_START + 1) << 8);
for (let state = N_START; state <= N_EXPONENT_DIGITS; state++) {
  const row = (state - N_START) << 8;
  NUMBER_NEXT.fill(numberCanEnd(state) ? NUMBER_ENDS : NUMBER_BAD, row, row + 256);
  const afterDigit = [N_INT, N_INT, NUMBER_BAD, N_INT, N_FRACTION, N_FRACTION, N_EXPONENT_DIGITS, N_EXPONENT_DIGITS, N_EXPONENT_DIGITS][state - N_START]!;
  for (let c = DIGIT_0; c <= DIGIT_9; c++) NUMBER_NEXT[row | c] = afterDigit;
  if (state === N_START || state === N_MINUS) NUMBER_NEXT[row | DIGIT_0] = N_ZERO;
  if (state === N_START) NUMBER_NEXT[row | MINUS] = N_MINUS;
  if (state === N_ZERO || state === N_INT) NUMBER_NEXT[row | DOT] = N_DOT;
  if (state === N_ZERO || state === N_INT || state === N_FRACTION) NUMBER_NEXT[row | LOWER_E] = NUMBER_NEXT[row | UPPER_E] = N_EXPONENT;
  if (state === N_EXPONENT) NUMBER_NEXT[row | PLUS] = NUMBER_NEXT[row | MINUS] = N_EXPONENT_SIGN;
}

/** VALUE_STATE[byte]: the state a value starting with the byte enters, or NOT_A_VALUE. */
const NOT_A_VALUE = 0xff;
const VALUE_STATE = new Uint8Array(256).fill(NOT_A_VALUE);
for (let c = DIGIT_0; c <= DIGIT_9; c++) VALUE_STATE[c] = N_START;
VALUE_STATE[MINUS] = N_START;
VALUE_STATE[QUOTE] = S_STRING;
VALUE_STATE[LBRACE] = S_OBJECT_FIRST;
VALUE_STATE[LBRACKET] = S_ARRAY_FIRST;
VALUE_STATE[LOWER_T] = VALUE_STATE[LOWER_F] = VALUE_STATE[LOWER_N] = S_LITERAL_START;

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
  private chunkLength = 0;

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
  /** Local offset in the chunk being scanned where `limit` falls, or the chunk's length. */
  private stop = 0;

  // Current record
  private recordStart = -1;
  private recordStartLocal = 0;
  private pieces: Buffer[] = [];
  private piecesLength = 0;

  // Token details
  private stringIsKey = false;
  private hexLeft = 0;
  private literalPos = 0;
  private literalStart = 0;
  private utf8Need = 0;
  private utf8Lo = 0;
  private utf8Hi = 0;
  private utf8Lead = 0;
  private utf8CodePoint = 0;
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

  /**
   * Dispatches once per token: each handler takes the bytes [i, stop) it may consume, runs its
   * own loop until its token ends, leaves `this.state` where the scan stands, and returns the
   * index of the next unconsumed byte. A handler that moves the limit (a record starts or ends, a
   * line feed) returns at once, so that the loop goes on to the new `this.stop`. Handlers keep
   * their rare paths (errors, escapes, split characters) in methods of their own so that V8 can
   * inline the common ones here: a call per token costs more than most tokens.
   */
  private scan(buf: Uint8Array, base: number, n: number): void {
    this.chunkLength = n;
    this.setLimit(this.limit);
    let i = 0;
    for (;;) {
      for (let stop = this.stop; i < stop; stop = this.stop) {
        const state = this.state;
        if (state === S_STRING) {
          i = this.string(buf, i, stop);
        } else if (state <= S_AFTER_VALUE) {
          if (WHITESPACE[buf[i]!] === 1) i = this.whitespace(buf, i, stop);
          else if (state === S_AFTER_VALUE) i = this.afterValue(buf, i, stop);
          else if (state === S_VALUE) i = this.value(buf, i);
          else if (state > S_VALUE) i = this.structural(buf, i);
          else i = this.topLevel(buf, i);
        } else if (state <= N_EXPONENT_DIGITS && state >= N_START) {
          i = this.number(buf, i, stop);
        } else if (state === S_LITERAL || state === S_LITERAL_START) {
          i = this.literal(buf, i, stop);
        } else if (state === S_STRING_ESCAPE || state === S_STRING_HEX) {
          i = this.escape(buf, i, stop);
        } else if (state === S_UTF8 || state === S_STRAY) {
          i = this.continuation(buf, i, stop);
        } else {
          i = this.byteOrderMark(buf, i);
        }
      }
      if (i >= n) break;
      // i === stop < n: the byte at i is the first one past the line or record limit.
      this.crossLimit(buf[i]!, base + i, this.state);
    }
    this.endChunk(buf, n);
  }

  // ---- token handlers -----------------------------------------------------------------------

  /** Spaces, tabs and CRs between tokens, up to the next other byte or up to and including a line feed. */
  private whitespace(buf: Uint8Array, i: number, stop: number): number {
    do {
      const c = buf[i]!;
      if (c === LF) {
        // A line feed can end an NDJSON value or line, which moves the line limit.
        this.lineFeed(i);
        return i + 1;
      }
      if (c !== SPACE && c !== TAB && c !== CR) return i;
      i++;
    } while (i < stop);
    return i;
  }

  /** Before the first value (T_START) and after a top-level value (T_AFTER, T_NEXTLINE): the byte at `i` is not whitespace. */
  private topLevel(buf: Uint8Array, i: number): number {
    const c = buf[i]!;
    const offset = this.chunkBase + i;
    const state = this.state;
    if (state === T_START) {
      if (c === 0xef && offset === 0) {
        this.state = T_BOM_1;
        return i + 1;
      }
      this.firstValue(c, offset);
      this.state = S_VALUE; // re-dispatch this byte
      return i;
    }
    if (state === T_AFTER) return this.unexpected(buf, i, 'TRAILING_DATA', this.trailingExpectation());
    // T_NEXTLINE
    if (VALUE_START[c] === 1) {
      this.nextLineValue(offset);
      this.state = S_VALUE; // re-dispatch this byte
      return i;
    }
    return this.format === F_UNDECIDED
      ? this.unexpected(buf, i, 'TRAILING_DATA', 'expected only whitespace after the top-level value, or another JSON value on its own line (NDJSON)')
      : this.unexpected(buf, i, 'INVALID_JSON', 'expected a JSON value at the start of the line');
  }

  /** A UTF-8 BOM at offset 0 (T_BOM_1, T_BOM_2): skipped if complete, otherwise the start of a stray character. */
  private byteOrderMark(buf: Uint8Array, i: number): number {
    const c = buf[i]!;
    if (this.state === T_BOM_1) {
      if (c === 0xbb) {
        this.state = T_BOM_2;
        return i + 1;
      }
      // Not a BOM: EF is then the lead of some other character, which is not JSON.
      this.beginStray(0xef, 0, 'INVALID_JSON', 'expected a value');
      return i; // re-dispatch this byte as its continuation
    }
    if (c === 0xbf) {
      this.state = T_START;
      return i + 1;
    }
    this.beginStray(0xef, 0, 'INVALID_JSON', 'expected a value');
    this.utf8Need = 1;
    this.utf8Lo = 0x80;
    this.utf8Hi = 0xbf;
    this.utf8CodePoint = (0x0f << 6) | (0xbb & 0x3f);
    return i;
  }

  /** After a value inside a container (S_AFTER_VALUE): the byte at `i`, which is not whitespace. */
  private afterValue(buf: Uint8Array, i: number, stop: number): number {
    const c = buf[i]!;
    const top = this.stack[this.depth - 1];
    if (c === COMMA) {
      if (top === IN_ARRAY) {
        this.state = S_VALUE;
        return i + 1;
      }
      // Usually the next key follows at once.
      if (i + 1 < stop && buf[i + 1] === QUOTE) return this.beginString(true, i + 2);
      this.state = S_OBJECT_KEY;
      return i + 1;
    }
    if (c === (top === IN_ARRAY ? RBRACKET : RBRACE)) return this.close(buf, i);
    return this.unexpectedStructure(buf, i);
  }

  /** A value must start at `i` (S_VALUE): opens a container or enters the first state of its token. */
  private value(buf: Uint8Array, i: number): number {
    const c = buf[i]!;
    const state = VALUE_STATE[c]!;
    if (state === NOT_A_VALUE) return this.unexpectedStructure(buf, i);
    if (this.depth === this.recordDepth) this.startRecord(i);
    this.state = state;
    if (state === S_STRING) {
      this.stringIsKey = false;
      return i + 1;
    }
    if (state <= S_OBJECT_FIRST) return this.open(state, i);
    return i; // a number or a literal: its handler scans its first byte too
  }

  /** After `[` (S_ARRAY_FIRST), after `{` or `,` in an object (S_OBJECT_FIRST, S_OBJECT_KEY), after a key (S_COLON). */
  private structural(buf: Uint8Array, i: number): number {
    const c = buf[i]!;
    const state = this.state;
    if (state === S_ARRAY_FIRST) {
      if (c === RBRACKET) return this.close(buf, i);
      this.state = S_VALUE;
      return i; // re-dispatch this byte
    }
    if (state === S_COLON) {
      if (c !== COLON) return this.unexpectedStructure(buf, i);
      this.state = S_VALUE;
      return i + 1;
    }
    if (c === QUOTE) return this.beginString(true, i + 1);
    if (c === RBRACE && state === S_OBJECT_FIRST) return this.close(buf, i);
    return this.unexpectedStructure(buf, i);
  }

  /** The byte at `i` cannot follow what came before it in a container (see unexpected). */
  private unexpectedStructure(buf: Uint8Array, i: number): number {
    const state = this.state;
    let expected: string;
    if (state === S_AFTER_VALUE) {
      expected = this.stack[this.depth - 1] === IN_ARRAY ? "expected ',' or ']' after an array element" : "expected ',' or '}' after an object member";
    } else if (state === S_OBJECT_FIRST) {
      expected = "expected a string key or '}'";
    } else if (state === S_OBJECT_KEY) {
      expected = "expected a string key after ','";
    } else if (state === S_VALUE) {
      expected = 'expected a value';
    } else {
      expected = "expected ':' after the object key";
    }
    return this.unexpected(buf, i, 'INVALID_JSON', expected);
  }

  /** The closing bracket at `i` ends the innermost container. */
  private close(buf: Uint8Array, i: number): number {
    this.depth--;
    return this.valueEnd(buf, i + 1);
  }

  /** The `[` or `{` at `i` opens a container (state: S_ARRAY_FIRST or S_OBJECT_FIRST). */
  private open(state: number, i: number): number {
    this.push(state === S_ARRAY_FIRST ? IN_ARRAY : IN_OBJECT, this.chunkBase + i);
    return i + 1;
  }

  private beginString(isKey: boolean, i: number): number {
    this.stringIsKey = isKey;
    this.state = S_STRING;
    return i;
  }

  /** Inside a string (S_STRING), up to and including the closing quote. */
  private string(buf: Uint8Array, i: number, stop: number): number {
    const plain = STRING_PLAIN;
    for (;;) {
      // Four bytes per test while they last: most bytes of a string are plain.
      while (i + 4 <= stop && (plain[buf[i]!]! & plain[buf[i + 1]!]! & plain[buf[i + 2]!]! & plain[buf[i + 3]!]!) === 1) i += 4;
      while (i < stop && plain[buf[i]!] === 1) i++;
      if (i >= stop) return i;
      if (buf[i] === QUOTE) return this.stringEnd(buf, i + 1, stop);
      i = this.stringSpecial(buf, i, stop);
      if (this.state !== S_STRING) return i;
    }
  }

  /** The closing quote of a string ends just before `i`. */
  private stringEnd(buf: Uint8Array, i: number, stop: number): number {
    if (!this.stringIsKey) return this.valueEnd(buf, i);
    // Usually the ':' follows at once.
    if (i < stop && buf[i] === COLON) {
      this.state = S_VALUE;
      return i + 1;
    }
    this.state = S_COLON;
    return i;
  }

  /** In a string, the byte at `i` is neither plain ASCII nor the closing quote: an escape, a control byte or a UTF-8 lead. */
  private stringSpecial(buf: Uint8Array, i: number, stop: number): number {
    const c = buf[i]!;
    const offset = this.chunkBase + i;
    if (c === BACKSLASH) {
      this.state = S_STRING_ESCAPE;
      return i + 1 < stop ? this.escape(buf, i + 1, stop) : i + 1;
    }
    if (c < 0x20) {
      throw this.error(
        'INVALID_JSON',
        offset,
        `unexpected ${describeByte(c)} at byte ${offset} inside a string: control characters must be escaped (e.g. \\n, \\u0000)`,
      );
    }
    // c >= 0x80: a multi-byte UTF-8 character.
    const need = UTF8_NEED[c]!;
    if (need === 0) throw this.error('INVALID_UTF8', offset, invalidLeadMessage(c, offset));
    this.beginUtf8(c, need);
    this.state = S_UTF8;
    return i + 1 < stop ? this.continuation(buf, i + 1, stop) : i + 1;
  }

  /** After a backslash in a string (S_STRING_ESCAPE) or inside its `\u` digits (S_STRING_HEX), up to the end of the escape. */
  private escape(buf: Uint8Array, i: number, stop: number): number {
    while (i < stop) {
      const c = buf[i]!;
      const offset = this.chunkBase + i;
      i++;
      if (this.state === S_STRING_ESCAPE) {
        const kind = ESCAPE[c];
        if (kind === 1) {
          this.state = S_STRING;
          return i;
        }
        if (kind !== 2) {
          throw this.error(
            'INVALID_JSON',
            offset,
            `invalid escape: unexpected ${describeByte(c)} after '\\' at byte ${offset}: expected one of " \\ / b f n r t u`,
          );
        }
        this.hexLeft = 4;
        this.state = S_STRING_HEX;
        continue;
      }
      if (HEX_DIGIT[c] !== 1) {
        throw this.error(
          'INVALID_JSON',
          offset,
          `unexpected ${describeByte(c)} at byte ${offset}: expected a hexadecimal digit in a \\u escape (4 are required)`,
        );
      }
      if (--this.hexLeft === 0) {
        this.state = S_STRING;
        return i;
      }
    }
    return i;
  }

  /**
   * The continuation bytes of a multi-byte UTF-8 character: in a string (S_UTF8, then back to
   * S_STRING), or of a stray character outside strings (S_STRAY, which fails once it is complete).
   */
  private continuation(buf: Uint8Array, i: number, stop: number): number {
    while (i < stop) {
      const c = buf[i]!;
      if (c < this.utf8Lo || c > this.utf8Hi) {
        const offset = this.chunkBase + i;
        throw this.error('INVALID_UTF8', offset, badContinuationMessage(this.utf8Lead, c, this.utf8Lo, this.utf8Hi, offset));
      }
      this.utf8CodePoint = (this.utf8CodePoint << 6) | (c & 0x3f);
      this.utf8Lo = 0x80;
      this.utf8Hi = 0xbf;
      i++;
      if (--this.utf8Need === 0) {
        if (this.state === S_STRAY) throw this.strayError();
        this.state = S_STRING;
        return i;
      }
    }
    return i;
  }

  /** Inside a number (N_START … N_EXPONENT_DIGITS), up to the first byte that cannot continue it. */
  private number(buf: Uint8Array, i: number, stop: number): number {
    let state = this.state;
    while (i < stop) {
      const next = NUMBER_NEXT[((state - N_START) << 8) | buf[i]!]!;
      if (next < N_START) {
        this.state = state;
        // The number ended before this byte, which the next state handles.
        return next === NUMBER_ENDS ? this.valueEnd(buf, i) : this.numberError(buf, i);
      }
      state = next;
      i++;
    }
    this.state = state;
    return i;
  }

  /** The byte at `i` can neither continue nor end the number (in this.state). */
  private numberError(buf: Uint8Array, i: number): number {
    const state = this.state;
    const c = buf[i]!;
    const offset = this.chunkBase + i;
    if (state === N_ZERO) {
      throw this.error(
        'INVALID_JSON',
        offset,
        `unexpected ${describeByte(c)} at byte ${offset}: a number cannot have a leading zero (expected '.', 'e' or the end of the number)`,
      );
    }
    let expected: string;
    if (state === N_MINUS) expected = "expected a digit after '-'";
    else if (state === N_DOT) expected = 'expected a digit after the decimal point';
    else if (state === N_EXPONENT) expected = "expected a digit, '+' or '-' in the exponent";
    else expected = 'expected a digit in the exponent';
    return this.unexpected(buf, i, 'INVALID_JSON', expected);
  }

  /** `true`, `false` or `null` from its first byte (S_LITERAL_START) or within it (S_LITERAL): LITERALS from literalStart, of which literalPos is next. */
  private literal(buf: Uint8Array, i: number, stop: number): number {
    if (this.state === S_LITERAL_START) {
      this.literalStart = this.literalPos = LITERAL_AT[buf[i]!]!;
      this.state = S_LITERAL;
    }
    let pos = this.literalPos;
    const end = LITERAL_END[this.literalStart]!;
    while (i < stop) {
      if (buf[i] !== LITERALS[pos]) return this.unexpected(buf, i, 'INVALID_JSON', `expected '${literalName(this.literalStart)}'`);
      i++;
      if (++pos === end) return this.valueEnd(buf, i);
    }
    this.literalPos = pos;
    return i;
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
    if (state === T_BOM_1 || state === T_BOM_2 || state === S_STRAY) {
      throw this.error(
        'INVALID_UTF8',
        total,
        `invalid UTF-8 at byte ${total}: the body ends inside a multi-byte character that started at byte ${state === S_STRAY ? this.strayStart : 0}`,
      );
    }
    if (numberCanEnd(state) && this.depth === 0) {
      this.valueEnd(null, 0);
      state = this.state;
    }
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
        this.setLimit(this.recordLimit);
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

  /** A line feed at local offset `i` between tokens: it may end a top-level value or a line. */
  private lineFeed(i: number): void {
    const state = this.state;
    const offset = this.chunkBase + i;
    if (state === T_AFTER) {
      if (!this.lineMode) return;
      this.newLine(offset);
      this.state = T_NEXTLINE;
      return;
    }
    if (state === T_START || state === T_NEXTLINE) {
      if (this.lineMode) this.newLine(offset);
      return;
    }
    // Between tokens inside a value.
    if (this.strictLines) {
      throw this.error('INVALID_JSON', offset, `unexpected line feed at byte ${offset} inside a value: in NDJSON each value must be on a single line`);
    }
    if (this.lineMode) {
      this.firstMultiline = true;
      this.newLine(offset);
    }
  }

  // ---- brackets -----------------------------------------------------------------------------

  private push(kind: number, offset: number): void {
    const depth = this.depth + 1;
    if (depth > this.stack.length) this.grow(kind, offset);
    this.stack[depth - 1] = kind;
    this.depth = depth;
  }

  /** The stack is full: grows it, up to maxDepth. */
  private grow(kind: number, offset: number): void {
    if (this.depth + 1 > this.maxDepth) {
      throw this.error(
        'NESTING_TOO_DEEP',
        offset,
        `unexpected ${kind === IN_ARRAY ? "'['" : "'{'"} at byte ${offset}: nesting deeper than ${this.maxDepth} levels is not allowed`,
      );
    }
    const grown = new Uint8Array(Math.min(this.maxDepth, this.stack.length * 2));
    grown.set(this.stack);
    this.stack = grown;
  }

  // ---- records and limits -------------------------------------------------------------------

  private startRecord(i: number): void {
    const offset = this.chunkBase + i;
    this.recordStart = offset;
    this.recordStartLocal = i;
    this.recordLimit = offset + this.maxLineBytes;
    this.setLimit(Math.min(this.lineLimit, this.recordLimit));
  }

  /** The one place where a value ends, just before local offset `end`: sets the state that follows it, returns `end`. */
  private valueEnd(buf: Uint8Array | null, end: number): number {
    const depth = this.depth;
    if (depth === this.recordDepth) this.recordDone(buf, end);
    this.state = depth === 0 ? T_AFTER : S_AFTER_VALUE;
    return end;
  }

  private recordDone(buf: Uint8Array | null, end: number): void {
    const index = this.recordCount++;
    // A value ended by end() (buf null: a number at the end of the body) ends at the body's end.
    this.onRecordBounds?.(index, this.recordStart, buf === null ? this.total : this.chunkBase + end);
    this.recordStart = -1;
    this.recordLimit = NO_LIMIT;
    this.setLimit(this.lineLimit);
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
    this.setLimit(Math.min(this.lineLimit, this.recordLimit));
  }

  /** `limit` is absolute; `stop` is where the scan of this chunk must pause for it (a small integer, cheap to compare). */
  private setLimit(limit: number): void {
    this.limit = limit;
    const left = limit - this.chunkBase;
    this.stop = left < this.chunkLength ? left : this.chunkLength;
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
    this.setLimit(Math.min(this.lineLimit, this.recordLimit));
  }

  // ---- errors -------------------------------------------------------------------------------

  private error(code: JsonScanErrorCode, offset: number, message: string): JsonScanError {
    return new JsonScanError(code, offset, message);
  }

  private beginUtf8(lead: number, need: number): void {
    this.utf8Lead = lead;
    this.utf8Need = need;
    this.utf8Lo = UTF8_LO[lead]!;
    this.utf8Hi = UTF8_HI[lead]!;
    this.utf8CodePoint = lead & (need === 1 ? 0x1f : need === 2 ? 0x0f : 0x07);
  }

  /**
   * The byte at `i` cannot appear here. An ASCII byte is reported at once with `code`. A byte
   * >= 0x80 is reported as INVALID_UTF8 if it cannot start a character; otherwise the rest of the
   * character is validated first (it may be in the next chunk): an invalid one is INVALID_UTF8 at
   * the offending byte, a valid one is reported with `code` at its first byte (see strayError).
   * Sets the state that validates the rest of the character and returns the index after `i`.
   */
  private unexpected(buf: Uint8Array, i: number, code: JsonScanErrorCode, expected: string): number {
    const c = buf[i]!;
    const offset = this.chunkBase + i;
    if (c < 0x80) throw this.error(code, offset, `unexpected ${describeByte(c)} at byte ${offset}: ${expected}`);
    const need = UTF8_NEED[c]!;
    if (need === 0) throw this.error('INVALID_UTF8', offset, invalidLeadMessage(c, offset));
    this.beginStray(c, offset, code, expected);
    return i + 1;
  }

  private beginStray(lead: number, offset: number, code: JsonScanErrorCode, expected: string): void {
    this.beginUtf8(lead, UTF8_NEED[lead]!);
    this.state = S_STRAY;
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
