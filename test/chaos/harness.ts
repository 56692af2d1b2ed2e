/**
 * What every fault scenario needs: the pipeline's services as child processes (so they can be
 * killed), a sustained seeded import load through the real ingress, a read_committed ledger
 * of what the pipeline committed for exactly those imports, and the final reckoning against
 * PostgreSQL. Nothing here imitates a server: the stack is the real one `make itest-up` starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { request } from 'undici';
import { loadConfig, type Config } from '../../core/config.js';
import { topics } from '../../core/pipeline.js';
import { createPostgres, type Postgres } from '../../core/postgres.js';
import { createRegistry } from '../../core/registry.js';
import { createS3 } from '../../core/s3.js';
import { generateCompanies, mulberry32, summarize, type GeneratedRecord } from '../../examples/generate/companies.js';
import { eventually, freePort, TopicReader, type ReadMessage } from '../integration/helpers.js';

export const config: Config = loadConfig();
export const s3 = createS3(config.s3);
const registry = createRegistry(config.registry);

export function log(message: string): void {
  process.stderr.write(`[chaos] ${new Date().toISOString().slice(11, 19)} ${message}\n`);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The seeded PRNG of the data generator, for the scenarios' random choices: the seed reproduces a run. */
export const seededRandom = mulberry32;

export { eventually, freePort };

async function httpStatus(url: string): Promise<number> {
  try {
    const response = await request(url, { headersTimeout: 5_000, bodyTimeout: 5_000 });
    await response.body.dump();
    return response.statusCode;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------
// Services

export class Service {
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  readiness(): Promise<number> {
    return httpStatus(`${this.url}/readiness`);
  }

  async kill(signal: NodeJS.Signals): Promise<number | null> {
    if (!this.alive) return this.child.exitCode;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** Where the services' own logs go (one file per process): git-ignored, next to the stack's. */
export const logDir = process.env.CHAOS_LOG_DIR ?? join(process.cwd(), '.stack', 'chaos-logs');

const entries = {
  ingress: { script: 'ingress/main.ts', port: 'INGRESS_PORT', host: 'INGRESS_HOST' },
  processor: { script: 'topology/main.ts', args: ['run'], port: 'PROCESSOR_PORT', host: 'PROCESSOR_HOST' },
} as const;

/** Starts a service as a child process and waits until it answers /liveness (or /readiness). */
export async function startService(
  kind: keyof typeof entries,
  env: Record<string, string> = {},
  waitFor: 'liveness' | 'readiness' = 'readiness',
): Promise<Service> {
  const entry = entries[kind];
  const port = await freePort();
  const args = ['--import', 'tsx', entry.script, ...('args' in entry ? entry.args : [])];
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, `${kind}-${new Date().toISOString().replaceAll(':', '')}-${port}.log`);
  const out = openSync(logFile, 'a');
  const child = spawn(process.execPath, args, {
    env: { ...process.env, [entry.port]: String(port), [entry.host]: '127.0.0.1', LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'warn', ...env },
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  const service = new Service(kind, child, port);
  const deadline = Date.now() + 120_000;
  for (;;) {
    // A service that fails to start exits at once (with its reason in the log): say so now.
    if (!service.alive) throw new Error(`${kind} exited with ${service.child.exitCode} before it was ready (log: ${logFile})`);
    if ((await httpStatus(`${service.url}/${waitFor}`)) === 200) return service;
    if (Date.now() > deadline) throw new Error(`${kind} not ready (/${waitFor}) within 120 s (log: ${logFile})`);
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------
// Import load: seeded files POSTed through the ingress, retried with the same request id

export interface ImportFile {
  index: number;
  requestId: string;
  body: Buffer;
  records: GeneratedRecord[];
}

export interface LoadStats {
  /** Files answered 202 (after retries), by request id. */
  accepted: Map<string, ImportFile>;
  /** Every answer's status, in order (the retries included). */
  answers: Array<{ at: number; status: number; code?: string }>;
  /** Files given up on (never 202 within the retry budget). */
  givenUp: ImportFile[];
  /** Answers a well-formed file must never get (anything but 202, 503, 409 or no answer). */
  unexpected: Array<{ file: number; status: number; code?: string }>;
}

/**
 * A client as users are told to write one: each file has its own X-Request-Id, and a 503 (or
 * a connection failure) is retried with the same id until it gets 202 — so every file ends
 * up imported once, whatever the ingress answered in between.
 */
export class ImportLoad {
  readonly stats: LoadStats = { accepted: new Map(), answers: [], givenUp: [], unexpected: [] };
  #running = false;
  #workers: Promise<void>[] = [];
  #next = 0;

  constructor(
    readonly tenant: string,
    readonly ingressUrl: () => string,
    readonly options: { seed: number; recordsPerFile: number; concurrency: number; maxFiles: number; retryForMs?: number },
  ) {}

  file(index: number): ImportFile {
    const prefix = `${this.tenant.slice(0, 24)}-${index}`;
    const records = [
      ...generateCompanies({
        count: this.options.recordsPerFile,
        seed: this.options.seed * 1000 + index,
        tenant: prefix,
        invalidEvery: 25,
        duplicateEvery: 40,
        bytesPerRecord: 1200,
      }),
    ];
    return {
      index,
      requestId: `chaos-${this.tenant}-${index}`.slice(0, 128),
      body: Buffer.from(`${records.map((record) => record.line).join('\n')}\n`),
      records,
    };
  }

  start(): void {
    this.#running = true;
    for (let i = 0; i < this.options.concurrency; i++) this.#workers.push(this.#work());
  }

  /** Stops starting new files and waits for the ones in flight to be accepted (or given up). */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#workers);
  }

  async #work(): Promise<void> {
    while (this.#running && this.#next < this.options.maxFiles) {
      const file = this.file(this.#next++);
      await this.#send(file);
    }
  }

  async #send(file: ImportFile): Promise<void> {
    const deadline = Date.now() + (this.options.retryForMs ?? 300_000);
    while (Date.now() < deadline) {
      let status = 0;
      let code: string | undefined;
      try {
        const response = await request(`${this.ingressUrl()}/import/${this.tenant}`, {
          method: 'POST',
          body: file.body,
          headers: { 'content-type': 'application/x-ndjson', 'x-request-id': file.requestId },
          headersTimeout: 60_000,
          bodyTimeout: 60_000,
        });
        status = response.statusCode;
        const json = (await response.body.json().catch(() => ({}))) as { error?: { code?: string } };
        code = json.error?.code;
      } catch (error) {
        code = (error as { code?: string }).code ?? 'CONNECTION_FAILED';
      }
      this.stats.answers.push({ at: Date.now(), status, code });
      if (status === 202) {
        this.stats.accepted.set(file.requestId, file);
        return;
      }
      if (status !== 0 && status !== 503 && status !== 409) {
        // Not an answer a well-formed file may get: recorded, and the file is not retried.
        this.stats.unexpected.push({ file: file.index, status, code });
        return;
      }
      await sleep(500);
    }
    this.stats.givenUp.push(file);
  }
}

// ---------------------------------------------------------------------------------------
// The ledger: what the pipeline committed for a set of request ids (read_committed)

interface LedgerCounts {
  fileExtractSuccess: Map<string, number>;
  /** `<request id>/<record index>` → copies committed. */
  recordValidated: Map<string, number>;
  validationError: Map<string, number>;
  processingErrors: Array<{ request_id: string; stage: string; reason_code: string; message: string }>;
  /** RecordsLoaded: batch id → inserted + updated + unchanged (at-least-once by design; counted per distinct batch). */
  loadedBatches: Map<string, number>;
  recordsLoadedMessages: number;
}

/**
 * Reads what the pipeline committed, read_committed, from where each topic ended when the ledger
 * started: one TopicReader (librdkafka's low-level consumer, partition EOF at the last stable
 * offset) per topic, no consumer group. It reads when asked — `catchUp()` reads every topic to
 * its end as it is at that moment — so a check made after the work is done has seen everything
 * committed up to then, with no settle sleep.
 */
export class Ledger {
  readonly counts: LedgerCounts = {
    fileExtractSuccess: new Map(),
    recordValidated: new Map(),
    validationError: new Map(),
    processingErrors: [],
    loadedBatches: new Map(),
    recordsLoadedMessages: 0,
  };
  readonly #seen = new Set<string>();
  readonly #readers = new Map<string, TopicReader>();
  /** The read in progress (or the last one): reads run one at a time, never two on one reader. */
  #reading: Promise<void> = Promise.resolve();

  constructor(readonly belongs: (requestId: string) => boolean) {}

  /** Starts at the current end of each topic: only what is committed from now on is counted. */
  async start(): Promise<void> {
    const watched = [
      topics.fileExtractSuccess.name,
      topics.recordValidated.name,
      topics.validationError.name,
      topics.processingError.name,
      topics.recordsLoaded.name,
    ];
    for (const topic of watched) this.#readers.set(topic, new TopicReader(topic, { from: 'end' }));
    // Resolves each partition's start (its end now) before any work starts.
    await this.catchUp();
  }

  /**
   * Reads every topic read_committed to its end as it is now and counts what it read: once it
   * returns, everything committed before the call is in the counts (each message once).
   */
  catchUp(timeoutMs = 120_000): Promise<void> {
    const read = this.#reading.catch(() => undefined).then(() => this.#readAll(timeoutMs));
    this.#reading = read;
    return read;
  }

  async #readAll(timeoutMs: number): Promise<void> {
    const readers = [...this.#readers];
    const read = await Promise.all(readers.map(([, reader]) => reader.readToEnd(timeoutMs)));
    for (const [i, [topic]] of readers.entries()) for (const message of read[i]!) await this.#count(topic, message);
  }

  async #count(topic: string, message: ReadMessage): Promise<void> {
    const requestId = message.headers.request_id ?? '';
    if (!this.belongs(requestId) || message.value === null) return;
    // Each message once per topic/partition/offset.
    const position = `${topic}/${message.partition}/${message.offset}`;
    if (this.#seen.has(position)) return;
    this.#seen.add(position);
    const value = (await registry.decode(message.value)) as Record<string, unknown>;
    const bump = (map: Map<string, number>, key: string, by = 1) => map.set(key, (map.get(key) ?? 0) + by);
    if (topic === topics.fileExtractSuccess.name) bump(this.counts.fileExtractSuccess, requestId);
    else if (topic === topics.recordValidated.name) bump(this.counts.recordValidated, `${requestId}/${String(value.record_index)}`);
    else if (topic === topics.validationError.name) bump(this.counts.validationError, `${requestId}/${String(value.record_index)}`);
    else if (topic === topics.processingError.name) {
      this.counts.processingErrors.push({
        request_id: requestId,
        stage: String(value.stage),
        reason_code: String(value.reason_code),
        message: String(value.message),
      });
    } else if (topic === topics.recordsLoaded.name) {
      this.counts.recordsLoadedMessages++;
      this.counts.loadedBatches.set(`${String(value.batch_id)}/${requestId}`, Number(value.inserted) + Number(value.updated) + Number(value.unchanged ?? 0));
    }
  }

  async stop(): Promise<void> {
    await this.#reading.catch(() => undefined);
    await Promise.all([...this.#readers.values()].map((reader) => reader.close()));
  }
}

// ---------------------------------------------------------------------------------------
// The reckoning

export interface Reckoning {
  filesAccepted: number;
  recordsAccepted: number;
  rowsExpected: number;
  rowsFound: number;
  validExpected: number;
  validCommitted: number;
  invalidExpected: number;
  invalidCommitted: number;
  /** Committed copies beyond the first, over FileExtractSuccess, RecordValidated and ValidationError. */
  duplicates: number;
  /** Expected outputs never committed (rows, RecordValidated, ValidationError). */
  lost: number;
  processingErrors: number;
  /** Accepted files whose object is missing in S3. */
  missingObjects: number;
  /** Objects under the tenant's prefix that no accepted file accounts for (half-stored). */
  strayObjects: number;
  problems: string[];
}

export function expectedOf(files: Iterable<ImportFile>) {
  let rows = 0;
  let valid = 0;
  let invalid = 0;
  let records = 0;
  for (const file of files) {
    const summary = summarize(file.records);
    rows += summary.distinctValidPermalinks;
    valid += summary.valid;
    invalid += summary.invalid;
    records += summary.total;
  }
  return { rows, valid, invalid, records };
}

export async function rowCount(postgres: Postgres, tenant: string): Promise<number> {
  return (await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [tenant])).n;
}

export function openPostgres(): Postgres {
  return createPostgres(config.postgres, { applicationName: 'chaos' });
}

/** Waits until the pipeline has committed everything the accepted files should give, then counts. */
export async function reckon(tenant: string, accepted: Map<string, ImportFile>, ledger: Ledger, options: { timeoutMs: number }): Promise<Reckoning> {
  const expected = expectedOf(accepted.values());
  const postgres = openPostgres();
  const problems: string[] = [];
  try {
    const settled = () => sum(ledger.counts.recordValidated) >= expected.valid && sum(ledger.counts.validationError) >= expected.invalid;
    try {
      await eventually(
        `${expected.rows} rows and every record's outcome for ${tenant}`,
        async () => {
          // The rows first (one query); then the ledger reads the topics to their ends.
          if ((await rowCount(postgres, tenant).catch(() => -1)) < expected.rows) return undefined;
          await ledger.catchUp();
          return settled() ? true : undefined;
        },
        options.timeoutMs,
      );
    } catch (error) {
      problems.push((error as Error).message);
    }
    // Every topic read to its end now that the work is done: anything doubled is in the counts.
    await ledger.catchUp().catch((error: unknown) => problems.push(`the ledger could not read the topics to their ends: ${(error as Error).message}`));
    const rowsFound = await rowCount(postgres, tenant);
    const perFile = await postgres.db.any<{ source_request_id: string; n: number }>(
      'SELECT source_request_id, count(*)::int AS n FROM companies WHERE tenant = $1 GROUP BY 1',
      [tenant],
    );
    for (const { source_request_id: requestId } of perFile) {
      if (!accepted.has(requestId)) problems.push(`rows from a request that was never accepted: ${requestId}`);
    }
    let duplicates = 0;
    let lost = 0;
    let validCommitted = 0;
    let invalidCommitted = 0;
    for (const [requestId, file] of accepted) {
      const extracted = ledger.counts.fileExtractSuccess.get(requestId) ?? 0;
      if (extracted > 1) duplicates += extracted - 1;
      for (const record of file.records) {
        const id = `${requestId}/${record.index}`;
        const map = record.expectedValid ? ledger.counts.recordValidated : ledger.counts.validationError;
        const copies = map.get(id) ?? 0;
        if (copies === 0) lost++;
        else duplicates += copies - 1;
        if (copies > 0 && record.expectedValid) validCommitted++;
        if (copies > 0 && !record.expectedValid) invalidCommitted++;
      }
    }
    lost += Math.max(0, expected.rows - rowsFound);
    // Objects: every accepted file stored, nothing else under the tenant's prefix.
    let missingObjects = 0;
    const keys = new Set<string>();
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: config.s3.bucket, Prefix: `${tenant}/`, ContinuationToken: token }));
      for (const object of page.Contents ?? []) keys.add(object.Key!);
      token = page.NextContinuationToken;
    } while (token !== undefined);
    const acceptedKeys = new Set<string>();
    for (const requestId of accepted.keys()) {
      const key = [...keys].find((candidate) => candidate.endsWith(`/${requestId}.json`));
      if (key === undefined) missingObjects++;
      else {
        acceptedKeys.add(key);
        await s3.send(new HeadObjectCommand({ Bucket: config.s3.bucket, Key: key }));
      }
    }
    const strayObjects = [...keys].filter((key) => !acceptedKeys.has(key)).length;
    if (ledger.counts.processingErrors.length > 0) {
      problems.push(`ProcessingError events: ${JSON.stringify(ledger.counts.processingErrors.slice(0, 3))}`);
    }
    return {
      filesAccepted: accepted.size,
      recordsAccepted: expected.records,
      rowsExpected: expected.rows,
      rowsFound,
      validExpected: expected.valid,
      validCommitted,
      invalidExpected: expected.invalid,
      invalidCommitted,
      duplicates,
      lost,
      processingErrors: ledger.counts.processingErrors.length,
      missingObjects,
      strayObjects,
      problems,
    };
  } finally {
    await postgres.close();
  }
}

function sum(map: Map<string, number>): number {
  let total = 0;
  for (const value of map.values()) total += value;
  return total;
}
