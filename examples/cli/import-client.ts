/**
 * The import command's decisions, kept apart from its I/O so they are proven with fakes: its
 * options, which request id a file gets, which answers are retried and after how long, and what
 * a run's summary and exit code are. `import.ts` does the HTTP and the files.
 */
import { createHash, randomBytes } from 'node:crypto';
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';

/** What the command's exit code means. */
export const exitCodes = {
  /** Every file was accepted (or had been: a retry answered with its first result). */
  ok: 0,
  /** The ingress refused at least one file for good (400, 401, 413, 415, 500…): fix it, run again. */
  refused: 1,
  /** Bad options or arguments: nothing was sent. */
  usage: 2,
  /** None refused, but some stayed unanswered after every retry (503, 409, connection): run again later with the same --request-id-prefix. */
  gaveUp: 3,
} as const;

export const usage = `usage: npm run import -- <tenant> <file-or-folder> [options]

  --url URL                 the ingress (INGRESS_URL, default http://127.0.0.1:3000)
  --token T                 send "Authorization: Bearer T" (TOKEN)
  --concurrency N           files uploaded at once, 1-64 (default 4)
  --retries N               retries per file of 503, 429, 409, 408, 502, 504 and connection failures, 0-100 (default 10)
  --max-delay SECONDS       cap of the exponential backoff between retries (default 30; Retry-After may ask longer)
  --request-id-prefix P     request ids are P-<file>-<hash>; reuse a run's prefix to re-run it without importing a file twice
  --help                    this text

exit codes: 0 all accepted, 1 some file refused, 2 usage error, 3 some file still unanswered after its retries
`;

/** Bad options or arguments; the message names the option. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'ERR_USAGE';
}

export interface ImportOptions {
  tenant: string;
  target: string;
  url: string;
  token: string;
  concurrency: number;
  retries: number;
  maxDelayMs: number;
  /** undefined: the command makes one for the run (newRunPrefix). */
  requestIdPrefix: string | undefined;
}

/** The ingress's own rule for request ids (ingress/request-id.ts), so a prefix never makes a refused id. */
const requestIdPattern = /^[A-Za-z0-9_-]{8,128}$/;
const prefixPattern = /^[A-Za-z0-9_-]{1,64}$/;

function integerOption(name: string, raw: string, min: number, max: number): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

const optionSpec = {
  url: { type: 'string' },
  token: { type: 'string' },
  concurrency: { type: 'string' },
  retries: { type: 'string' },
  'max-delay': { type: 'string' },
  'request-id-prefix': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parseStrict(argv: readonly string[]) {
  try {
    return parseArgs({ args: [...argv], options: optionSpec, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message, { cause: error });
  }
}

/** The command's options, validated; 'help' when it was asked for. Throws UsageError naming the bad option. */
export function parseImportArgs(argv: readonly string[], env: Record<string, string | undefined> = {}): ImportOptions | 'help' {
  const { values, positionals } = parseStrict(argv);
  if (values.help === true) return 'help';
  if (positionals.length !== 2) {
    throw new UsageError(`expected <tenant> and <file-or-folder>, got ${positionals.length} argument(s)`);
  }
  const [tenant, target] = positionals as [string, string];
  const url = (values.url ?? env.INGRESS_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, '');
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch (error) {
    throw new UsageError(`--url must be an http(s) URL, got "${url}"`, { cause: error });
  }
  if (protocol !== 'http:' && protocol !== 'https:') throw new UsageError(`--url must be an http(s) URL, got "${url}"`);
  const maxDelayRaw = values['max-delay'] ?? '30';
  const maxDelaySeconds = Number(maxDelayRaw);
  if (maxDelayRaw.trim() === '' || !Number.isFinite(maxDelaySeconds) || maxDelaySeconds <= 0 || maxDelaySeconds > 3600) {
    throw new UsageError(`--max-delay must be a number of seconds above 0 and at most 3600, got "${maxDelayRaw}"`);
  }
  const prefix = values['request-id-prefix'];
  if (prefix !== undefined && !prefixPattern.test(prefix)) {
    throw new UsageError(`--request-id-prefix must be 1-64 characters of A-Z, a-z, 0-9, - and _, got "${prefix}"`);
  }
  return {
    tenant,
    target,
    url,
    token: values.token ?? env.TOKEN ?? '',
    concurrency: integerOption('concurrency', values.concurrency ?? '4', 1, 64),
    retries: integerOption('retries', values.retries ?? '10', 0, 100),
    maxDelayMs: Math.round(maxDelaySeconds * 1000),
    requestIdPrefix: prefix,
  };
}

/** One prefix per run, sortable by time: `imp-<ms base36>-<random>`. */
export function newRunPrefix(now: number = Date.now(), random: Buffer = randomBytes(3)): string {
  return `imp-${now.toString(36)}-${random.toString('hex')}`;
}

/**
 * A file's request id: the run's prefix, a readable part of its name and a hash of its absolute
 * path, size and modification time. Fixed for the run, so every retry of the file carries it;
 * the same prefix on an unchanged file gives the same id again, so a re-run of an interrupted
 * run gets the first results instead of importing twice (within the ingress's dedupe window).
 */
export function requestIdFor(prefix: string, file: { path: string; size: number; mtimeMs: number }): string {
  const slug =
    basename(file.path)
      .replace(/[^A-Za-z0-9_-]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40) || 'file';
  const hash = createHash('sha256')
    .update(`${resolve(file.path)}\u0000${file.size}\u0000${Math.trunc(file.mtimeMs)}`)
    .digest('hex')
    .slice(0, 10);
  const id = `${prefix}-${slug}-${hash}`;
  if (!requestIdPattern.test(id)) throw new UsageError(`request id "${id}" is not valid; choose another --request-id-prefix`);
  return id;
}

/** The ingress's answer as parsed: JSON when it sent JSON, else the text (null when empty). */
export type AnswerBody = unknown;

/** The fields of an answer this client reads; anything else it prints as it came. */
interface AnswerFields {
  records?: number;
  duplicate?: boolean;
  error?: { code?: string; message?: string };
}

function fieldsOf(body: AnswerBody): AnswerFields {
  return typeof body === 'object' && body !== null ? body : {};
}

/** What one attempt of one file came to. */
export type AttemptResult =
  | { kind: 'answer'; status: number; retryAfter: string | undefined; body: AnswerBody }
  /** No answer: not connected, or the connection broke. The same request id makes resending safe. */
  | { kind: 'connection-failed'; code: string; message: string }
  /** The file could not be read here: the ingress is not to blame, retrying will not help. */
  | { kind: 'file-unreadable'; code: string; message: string };

/**
 * Answers that mean "not now": 503 (not ready, at its upload limit, S3 or Kafka down: nothing
 * stored), 429, 409 (this request id's first attempt still runs), 408 (the body came too
 * slowly), 502/504 (a proxy in front). Any other answer is final.
 */
export const retryableStatuses: ReadonlySet<number> = new Set([408, 409, 429, 502, 503, 504]);

export function isRetryable(result: AttemptResult): boolean {
  if (result.kind === 'connection-failed') return true;
  if (result.kind === 'file-unreadable') return false;
  return retryableStatuses.has(result.status);
}

/** Retry-After in delay-seconds or HTTP-date form (RFC 9110 §10.2.3), as milliseconds from now; undefined if absent or malformed. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // IMF-fixdate and the obsolete RFC 850 form name a weekday and GMT; anything else is not a date here.
  if (!/^[A-Za-z]{3,9}, .*GMT$/.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - nowMs);
}

export interface BackoffOptions {
  /** The first retry waits between half of this and this. */
  baseMs?: number;
  /** The exponential part stops growing here. */
  maxDelayMs?: number;
  /** A Retry-After above this is taken as this: a misconfigured server cannot park the command for hours. */
  maxRetryAfterMs?: number;
}

/**
 * The wait before retry number `retry` (1 for the first): exponential with "equal jitter" (half
 * fixed, half random), so concurrent clients spread out yet each waits a guaranteed minimum, and
 * never less than the server's Retry-After. With the defaults, ten retries wait at least 75 s in
 * all: longer than the ingress's claim lease (60 s), after which a 409 left by a dead ingress ends.
 */
export function retryDelayMs(
  retry: number,
  retryAfterMs: number | undefined,
  random: () => number,
  { baseMs = 500, maxDelayMs = 30_000, maxRetryAfterMs = 300_000 }: BackoffOptions = {},
): number {
  const exponential = Math.min(maxDelayMs, baseMs * 2 ** Math.max(0, retry - 1));
  const jittered = exponential / 2 + random() * (exponential / 2);
  const asked = retryAfterMs === undefined ? 0 : Math.min(retryAfterMs, maxRetryAfterMs);
  return Math.round(Math.max(jittered, asked));
}

export type Verdict = 'accepted' | 'refused' | 'gave-up';

export interface FileOutcome {
  file: string;
  size: number;
  requestId: string;
  attempts: number;
  verdict: Verdict;
  /** The last attempt's result. */
  result: AttemptResult;
}

export interface RetryNotice {
  file: string;
  requestId: string;
  retry: number;
  retries: number;
  delayMs: number;
  result: AttemptResult;
}

export interface ImportFileOptions {
  file: string;
  size: number;
  requestId: string;
  /** Sends the whole file once, with the request id. */
  attempt: (attemptNumber: number) => Promise<AttemptResult>;
  retries: number;
  backoff?: BackoffOptions;
  sleep: (ms: number) => Promise<void>;
  now: () => number;
  random: () => number;
  onRetry?: (notice: RetryNotice) => void;
}

/** Sends one file until it gets a final answer or runs out of retries, always with the same request id. */
export async function importFile(options: ImportFileOptions): Promise<FileOutcome> {
  const { file, size, requestId, retries } = options;
  for (let attempts = 1; ; attempts++) {
    const result = await options.attempt(attempts);
    const done = (verdict: Verdict): FileOutcome => ({ file, size, requestId, attempts, verdict, result });
    if (result.kind === 'answer' && result.status === 202) return done('accepted');
    if (!isRetryable(result)) return done('refused');
    if (attempts > retries) return done('gave-up');
    const retryAfterMs = result.kind === 'answer' ? parseRetryAfter(result.retryAfter, options.now()) : undefined;
    const delayMs = retryDelayMs(attempts, retryAfterMs, options.random, options.backoff);
    options.onRetry?.({ file, requestId, retry: attempts, retries, delayMs, result });
    await options.sleep(delayMs);
  }
}

/** `503 TOO_MANY_UPLOADS: the ingress is at…`, `connection failed (ECONNREFUSED): …`. */
export function describeResult(result: AttemptResult): string {
  if (result.kind === 'connection-failed') return `connection failed (${result.code}): ${result.message}`;
  if (result.kind === 'file-unreadable') return `file unreadable (${result.code}): ${result.message}`;
  const answer = fieldsOf(result.body);
  const error = answer.error;
  if (result.status === 202) return `${result.status} ${answer.records ?? '?'} records${answer.duplicate === true ? ' (a retry: the first result)' : ''}`;
  if (error !== undefined) return `${result.status} ${error.code ?? 'ERROR'}: ${error.message ?? ''}`;
  return `${result.status} ${typeof result.body === 'string' ? result.body.slice(0, 200) : ''}`.trimEnd();
}

export function describeRetry(notice: RetryNotice): string {
  return `${basename(notice.file)}: ${describeResult(notice.result)}; retry ${notice.retry}/${notice.retries} in ${(notice.delayMs / 1000).toFixed(1)} s, request id ${notice.requestId}`;
}

export interface Summary {
  lines: string[];
  exitCode: number;
}

/** One line per file, then the totals and what the exit code means. */
export function summarize(outcomes: readonly FileOutcome[], seconds: number): Summary {
  const count = (verdict: Verdict) => outcomes.filter((outcome) => outcome.verdict === verdict).length;
  const label: Record<Verdict, string> = { accepted: 'ok     ', refused: 'REFUSED', 'gave-up': 'GAVE UP' };
  const lines = outcomes.map((outcome) => {
    const tries = outcome.attempts > 1 ? `  after ${outcome.attempts} attempts` : '';
    return `${label[outcome.verdict]}  ${basename(outcome.file)}  ${describeResult(outcome.result)}${tries}  request id ${outcome.requestId}`;
  });
  const accepted = outcomes.filter((outcome) => outcome.verdict === 'accepted');
  const acceptedBytes = accepted.reduce((sum, outcome) => sum + outcome.size, 0);
  const records = accepted.reduce((sum, outcome) => sum + (outcome.result.kind === 'answer' ? Number(fieldsOf(outcome.result.body).records ?? 0) : 0), 0);
  const refused = count('refused');
  const gaveUp = count('gave-up');
  const exitCode = refused > 0 ? exitCodes.refused : gaveUp > 0 ? exitCodes.gaveUp : exitCodes.ok;
  const meaning =
    exitCode === exitCodes.refused
      ? 'some file was refused'
      : exitCode === exitCodes.gaveUp
        ? 'some file is still unanswered; run again with the same --request-id-prefix'
        : 'all accepted';
  lines.push(
    '',
    `${accepted.length}/${outcomes.length} files accepted, ${refused} refused, ${gaveUp} gave up; ` +
      `${records} records, ${(acceptedBytes / 1e6).toFixed(1)} MB accepted in ${seconds.toFixed(1)} s; exit ${exitCode} (${meaning})`,
  );
  return { lines, exitCode };
}
