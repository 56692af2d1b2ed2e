/**
 * Uploads a file, or every .json/.ndjson/.jsonl file of a folder, to the ingress, streaming
 * each from disk, with per-byte progress on stderr and a summary on stdout.
 *
 *   npm run import -- <tenant> <file-or-folder> [--url U] [--token T] [--concurrency N]
 *                     [--retries N] [--max-delay SECONDS] [--request-id-prefix P]
 *
 * Each file carries one X-Request-Id for the whole run (printed), so retries of 503, 409 and
 * broken connections are safe: the ingress answers a repeated (tenant, request id) with its
 * first result instead of importing again. Exit codes: see exitCodes in import-client.ts.
 */
import { readdirSync, statSync, type Stats } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  describeRetry,
  exitCodes,
  importFile,
  newRunPrefix,
  parseImportArgs,
  requestIdFor,
  summarize,
  usage,
  UsageError,
  type AttemptResult,
  type FileOutcome,
  type ImportOptions,
} from './import-client.js';
import { Progress } from './progress.js';
import { sendFile } from './send-file.js';

const importExtensions = ['.json', '.ndjson', '.jsonl'];

function usageExit(message: string): never {
  process.stderr.write(`error: ${message}\n\n${usage}`);
  process.exit(exitCodes.usage);
}

function listFiles(target: string): Array<{ path: string; stats: Stats }> {
  let stats: Stats;
  try {
    stats = statSync(target);
  } catch (error) {
    throw new UsageError(`cannot read "${target}": ${(error as Error).message}`, { cause: error });
  }
  const paths = stats.isDirectory()
    ? readdirSync(target)
        .filter((name) => importExtensions.includes(extname(name)))
        .sort()
        .map((name) => join(target, name))
    : [target];
  if (paths.length === 0) throw new UsageError(`no ${importExtensions.join('/')} files in folder "${target}"`);
  return paths.map((path) => ({ path, stats: statSync(path) }));
}

let options: ImportOptions;
let files: Array<{ path: string; stats: Stats }>;
try {
  const parsed = parseImportArgs(process.argv.slice(2), process.env);
  if (parsed === 'help') {
    process.stdout.write(usage);
    process.exit(exitCodes.ok);
  }
  options = parsed;
  files = listFiles(options.target);
} catch (error) {
  if (error instanceof UsageError) usageExit(error.message);
  throw error;
}

const prefix = options.requestIdPrefix ?? newRunPrefix();
const plan = files.map((file) => ({ ...file, requestId: requestIdFor(prefix, { path: file.path, size: file.stats.size, mtimeMs: file.stats.mtimeMs }) }));
const totalBytes = plan.reduce((sum, file) => sum + file.stats.size, 0);
const started = Date.now();
const progress = new Progress({
  totalBytes,
  files: plan.length,
  tty: process.stderr.isTTY === true,
  write: (text) => process.stderr.write(text),
});
progress.note(
  `${plan.length} file(s) to ${options.url}/import/${options.tenant}; request ids ${prefix}-<file>-<hash> ` +
    `(run again with --request-id-prefix ${prefix} to resend them without importing any twice)`,
);

/** One whole attempt of one file: from its first byte, with its request id. */
function attempt(file: (typeof plan)[number]): Promise<AttemptResult> {
  progress.restart(file.path);
  const headers: Record<string, string> = {
    'content-type': ['.ndjson', '.jsonl'].includes(extname(file.path)) ? 'application/x-ndjson' : 'application/json',
    'x-filename': encodeURIComponent(basename(file.path)),
    'x-request-id': file.requestId,
  };
  if (options.token !== '') headers.authorization = `Bearer ${options.token}`;
  return sendFile({
    url: `${options.url}/import/${options.tenant}`,
    path: file.path,
    size: file.stats.size,
    headers,
    onBytes: (bytes) => progress.sent(file.path, bytes),
  });
}

const outcomes: FileOutcome[] = [];
const queue = [...plan];
await Promise.all(
  Array.from({ length: Math.min(options.concurrency, plan.length) }, async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const current = file;
      progress.note(`${basename(current.path)}: request id ${current.requestId}`);
      const outcome = await importFile({
        file: current.path,
        size: current.stats.size,
        requestId: current.requestId,
        attempt: () => attempt(current),
        retries: options.retries,
        backoff: { maxDelayMs: options.maxDelayMs },
        sleep: (ms) => sleep(ms),
        now: Date.now,
        random: Math.random,
        onRetry: (notice) => progress.note(describeRetry(notice)),
      });
      progress.finished(current.path, current.stats.size);
      outcomes.push(outcome);
    }
  }),
);
progress.end();

// In the order of the files, not of their answers.
const byFile = plan.map((file) => outcomes.find((outcome) => outcome.file === file.path)!);
const summary = summarize(byFile, (Date.now() - started) / 1000);
process.stdout.write(`${summary.lines.join('\n')}\n`);
process.exitCode = summary.exitCode;
