/**
 * Every error code this project defines, in one place, as Fastify keeps its FST_ERR_* and
 * platformatic/kafka its PLT_KFK_* codes: clients and operators match on these codes, never on
 * message text. The senders still write their codes as literals; core/error-codes.test.ts scans
 * the product source so that a code missing here, a code nobody sends any more, or an HTTP
 * status that differs from the sender's fails the unit tests. docs/error-codes.md is generated
 * from this object (deployments/error-codes-doc.ts).
 *
 * Third-party codes that pass through (Node's ECONNREFUSED, undici's UND_ERR_*, S3 error names,
 * librdkafka's numbers) are not catalogued: they are not ours to keep stable.
 */

export interface ErrorCodeInfo {
  /** The HTTP status when the code answers a request; null when it only appears in events, logs or exit messages. */
  status: number | null;
  /** Whether the same request or message, tried again later, can succeed. */
  retriable: boolean;
  /** One line, for users. */
  meaning: string;
}

/** Where a code arises; the catalogue's groups, in the order the docs list them. */
export const errorCodeGroups = {
  ingressHttp: "Ingress HTTP (POST /import/:tenant) and every service's HTTP server",
  importBody: 'Import body parse errors: 400 answers of the ingress, and FileExtractError reason_code',
  processor: "Processor stages: ProcessingError reason_code (and the validate stage's report code)",
  sink: 'Postgres sink and migrations',
  monitoringHttp: 'Monitoring HTTP (lineage API, error reports, replays)',
  registry: 'Schema registry, at start-up',
  configCli: 'Configuration and command-line tools',
} as const;

export type ErrorCodeGroup = keyof typeof errorCodeGroups;

const ingressHttp = {
  INVALID_REQUEST_ID: {
    status: 400,
    retriable: false,
    meaning: 'X-Request-Id (or a request id in the path) is not 8-128 characters of A-Z, a-z, 0-9, - and _.',
  },
  INVALID_TENANT: { status: 400, retriable: false, meaning: 'The tenant does not match [a-z0-9][a-z0-9._-]{0,62}.' },
  UNAUTHORIZED: { status: 401, retriable: false, meaning: 'No valid "Authorization: Bearer <token>" for this tenant (or, on the monitoring, for any viewer).' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retriable: false, meaning: 'Content-Type is neither application/json nor application/x-ndjson (UTF-8), nor absent.' },
  BODY_TOO_LARGE: {
    status: 413,
    retriable: false,
    meaning: 'The body (by Content-Length or as it arrived) exceeds INGRESS_MAX_BODY_BYTES; limit_bytes says how many.',
  },
  BODY_TOO_SLOW: { status: 408, retriable: true, meaning: 'The body arrived slower than INGRESS_BODY_MIN_BYTES_PER_SECOND; nothing was stored.' },
  TOO_MANY_UPLOADS: { status: 503, retriable: true, meaning: 'The ingress is at its concurrent upload limit; retry shortly with the same X-Request-Id.' },
  IMPORT_IN_PROGRESS: { status: 409, retriable: true, meaning: 'An import with this X-Request-Id is still running; a retry after it ends gets its result.' },
  STORAGE_UNAVAILABLE: {
    status: 503,
    retriable: true,
    meaning: 'S3 or the request id claim store did not answer; nothing was stored, retry with the same X-Request-Id.',
  },
  EVENT_NOT_ACKNOWLEDGED: {
    status: 503,
    retriable: true,
    meaning: 'Kafka did not acknowledge FileExtractSuccess; the stored file was removed, retry with the same X-Request-Id.',
  },
  INTERNAL: { status: 500, retriable: false, meaning: 'The import failed unexpectedly (a bug); the ingress log has the cause.' },
  NOT_FOUND: { status: 404, retriable: false, meaning: 'No route for this method and path (any service).' },
  METRICS_FAILED: { status: 500, retriable: true, meaning: 'GET /metrics could not collect the metrics (any service).' },
  S3_UNAVAILABLE: { status: null, retriable: true, meaning: 'An S3 call failed (network, 5xx); the ingress answers STORAGE_UNAVAILABLE, extract retries.' },
} as const satisfies Record<string, ErrorCodeInfo>;

const importBody = {
  EMPTY_BODY: { status: 400, retriable: false, meaning: 'The body is empty or only whitespace.' },
  INVALID_JSON: { status: 400, retriable: false, meaning: 'The body is not JSON (or one NDJSON line is not); offset gives the byte.' },
  INVALID_UTF8: { status: 400, retriable: false, meaning: 'The body is not valid UTF-8; offset gives the byte.' },
  TRUNCATED: { status: 400, retriable: false, meaning: 'The body ends inside a value (cut off).' },
  TRAILING_DATA: { status: 400, retriable: false, meaning: 'Something follows the one JSON object or array the body holds.' },
  TOP_LEVEL_SCALAR: { status: 400, retriable: false, meaning: 'A top-level value (or NDJSON line) is a string, number, boolean or null, not a record.' },
  NESTING_TOO_DEEP: { status: 400, retriable: false, meaning: 'Objects or arrays nest deeper than INGRESS_MAX_DEPTH.' },
  LINE_TOO_LONG: { status: 400, retriable: false, meaning: 'One record (NDJSON line or array element) exceeds INGRESS_MAX_LINE_BYTES.' },
} as const satisfies Record<string, ErrorCodeInfo>;

const processor = {
  EMPTY_MESSAGE: { status: null, retriable: false, meaning: 'A consumed Kafka message has no value (a tombstone on an event topic).' },
  UNDECODABLE: { status: null, retriable: false, meaning: 'A consumed message is not Avro of a schema the registry knows.' },
  UNPROCESSABLE: { status: null, retriable: false, meaning: 'A stage failed with an unexpected error, more often than PROCESSOR_MAX_ATTEMPTS (a bug).' },
  BAD_PIECE_PLAN: { status: null, retriable: false, meaning: "split: the FileExtractSuccess pieces do not cover the file's records exactly." },
  S3_OBJECT_MISSING: { status: null, retriable: false, meaning: 'extract: the stored file no longer exists in S3.' },
  S3_ACCESS_DENIED: { status: null, retriable: false, meaning: 'extract: S3 refused access to the stored file.' },
  S3_EMPTY_BODY: { status: null, retriable: false, meaning: 'extract: S3 answered without a body.' },
  FILE_CORRUPT: {
    status: null,
    retriable: false,
    meaning: 'extract: the stored file (or piece) no longer parses, or has another length than the ingress stored.',
  },
  RECORD_COUNT_MISMATCH: { status: null, retriable: false, meaning: 'extract: a piece holds another number of records than the ingress counted.' },
  CONTRACT_VIOLATION: {
    status: null,
    retriable: false,
    meaning: "validate: the record breaks schemas/company.schema.json; the error report's code for a ValidationError.",
  },
} as const satisfies Record<string, ErrorCodeInfo>;

const sink = {
  SINK_DB_UNAVAILABLE: { status: null, retriable: true, meaning: 'load: PostgreSQL did not answer or aborted the transaction; the batch is retried.' },
  SINK_BAD_OPTIONS: { status: null, retriable: false, meaning: 'The Postgres writer was given a bad chunkSize or method.' },
  SINK_BAD_BATCH: { status: null, retriable: false, meaning: 'load: a batch handed to the sink is malformed (a bug upstream).' },
  ERR_MIGRATION_MISSING_DOWN: { status: null, retriable: false, meaning: 'npm run migrate: a migration has no .down.sql beside it.' },
  ERR_MIGRATION_UNKNOWN: { status: null, retriable: false, meaning: 'npm run migrate: the database has a migration applied that no file describes.' },
} as const satisfies Record<string, ErrorCodeInfo>;

const monitoringHttp = {
  LINEAGE_UNAVAILABLE: { status: 503, retriable: true, meaning: 'The lineage store (PostgreSQL) did not answer; Retry-After says when to ask again.' },
  LINEAGE_DB_UNAVAILABLE: { status: null, retriable: true, meaning: 'Writing or reading the lineage in PostgreSQL failed; the monitoring retries (logs).' },
  IMPORT_NOT_FOUND: { status: 404, retriable: false, meaning: 'No import with this request id is known (for this tenant, or for this viewer).' },
  AMBIGUOUS_REQUEST_ID: { status: 409, retriable: false, meaning: 'Several tenants sent this request id; name one with ?tenant=.' },
  TENANT_NOT_FOUND: { status: 404, retriable: false, meaning: 'No imports of this tenant are known (in the asked time range).' },
  INVALID_QUERY: { status: 400, retriable: false, meaning: 'The query string is malformed, or a date or run id in it is.' },
  UNKNOWN_PARAMETER: { status: 400, retriable: false, meaning: 'The query names a parameter this route does not know; the message lists the known ones.' },
  REPEATED_PARAMETER: { status: 400, retriable: false, meaning: 'The query gives one parameter more than once.' },
  INVALID_STATUS: { status: 400, retriable: false, meaning: 'status is not one of the import statuses.' },
  INVALID_LIMIT: { status: 400, retriable: false, meaning: 'limit is not an integer in the allowed range.' },
  INVALID_FORMAT: { status: 400, retriable: false, meaning: 'format is not json, ndjson or csv.' },
  INVALID_CURSOR: { status: 400, retriable: false, meaning: 'after is not the next cursor of an earlier page.' },
  REPLAY_RUNNING: { status: 409, retriable: true, meaning: 'This replay run is running already; wait for it or stop it.' },
  REPLAY_RUN_UNKNOWN: { status: 404, retriable: false, meaning: 'No replay run with this id is known (for this viewer).' },
  REPLAY_NOTHING_TO_REPLAY: { status: 409, retriable: false, meaning: 'The import has no stored file (it was refused or is not received yet).' },
  ARCHIVE_OBJECT_MISSING: { status: 410, retriable: false, meaning: "The archive no longer holds the import's file (its lifecycle rule removed it)." },
  ARCHIVE_OBJECT_CHANGED: { status: 409, retriable: false, meaning: "The archived file's sha256 is not the one the ingress stored." },
  REPLAY_ID_TOO_LONG: { status: 409, retriable: false, meaning: 'The request id leaves no room for the replay suffix (128 characters at most).' },
  REPLAY_FAILED: { status: 503, retriable: true, meaning: 'The replay did not start (S3, Kafka or the database failed); try the same run again.' },
  CROSS_SITE_REQUEST: {
    status: 403,
    retriable: false,
    meaning: "A POST from another site's page (Sec-Fetch-Site, else Origin, is not this site): the monitoring's forms are posted from its own pages.",
  },
} as const satisfies Record<string, ErrorCodeInfo>;

const registry = {
  ERR_REGISTRY_CONFIG: {
    status: null,
    retriable: true,
    meaning: "Reading or setting a subject's compatibility failed (retriable when the registry answered 5xx).",
  },
  ERR_REGISTRY_REGISTER: { status: null, retriable: true, meaning: 'Registering a schema failed (retriable when the registry was unreachable).' },
  ERR_SCHEMA_INCOMPATIBLE: {
    status: null,
    retriable: false,
    meaning: "A schema is incompatible with the registered versions under the subject's rule (see schemas/README.md).",
  },
  ERR_SCHEMA_NOT_REGISTERED: { status: null, retriable: false, meaning: 'An event was encoded for a topic whose schema was never registered (a bug).' },
} as const satisfies Record<string, ErrorCodeInfo>;

const configCli = {
  ERR_CONFIG: { status: null, retriable: false, meaning: 'A setting from the environment is missing or malformed; the message names each variable.' },
  ERR_UWS_NATIVE_UNAVAILABLE: {
    status: null,
    retriable: false,
    meaning: 'The uWebSockets.js native binary did not load and UWS_ALLOW_JS_FALLBACK is not set.',
  },
  ERR_USAGE: { status: null, retriable: false, meaning: 'A command-line tool was given bad options or arguments (exit code 2).' },
  CONNECTION_FAILED: { status: null, retriable: true, meaning: 'npm run import: the connection failed without a system error code.' },
  READ_FAILED: { status: null, retriable: false, meaning: 'npm run import: a file could not be read without a system error code.' },
} as const satisfies Record<string, ErrorCodeInfo>;

/** Each group's codes, for the docs; errorCodes is their union. */
export const errorCodesByGroup = { ingressHttp, importBody, processor, sink, monitoringHttp, registry, configCli } as const satisfies Record<
  ErrorCodeGroup,
  Record<string, ErrorCodeInfo>
>;

export const errorCodes = { ...ingressHttp, ...importBody, ...processor, ...sink, ...monitoringHttp, ...registry, ...configCli } as const;

export type ErrorCode = keyof typeof errorCodes;

/**
 * A record the database refused (load): `PG_` and the row's five-character SQLSTATE, e.g.
 * PG_23505 (a unique violation), PG_22021 (a byte sequence PostgreSQL will not store). The row is
 * counted in RecordsLoaded.rejected and reported as a load ProcessingError; the rest of the
 * batch is written.
 */
export type PgErrorCode = `PG_${string}`;

export const pgErrorCodes = {
  pattern: /^PG_[0-9A-Z]{5}$/,
  template: 'PG_<SQLSTATE>',
  group: 'sink',
  status: null,
  retriable: false,
  meaning: 'load: PostgreSQL refused this row with SQLSTATE <SQLSTATE>; the rest of the batch is written.',
} as const satisfies ErrorCodeInfo & { pattern: RegExp; template: string; group: ErrorCodeGroup };

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(errorCodes, code);
}

export function isPgErrorCode(code: string): code is PgErrorCode {
  return pgErrorCodes.pattern.test(code);
}

/** The catalogue's entry for a code, the PG_ family included; undefined for a code we do not define. */
export function errorCodeInfo(code: string): ErrorCodeInfo | undefined {
  if (isErrorCode(code)) return errorCodes[code];
  return isPgErrorCode(code) ? pgErrorCodes : undefined;
}

/** The HTTP status a code answers with; null when it never answers a request (or is not ours). */
export function statusOf(code: ErrorCode | PgErrorCode | (string & {})): number | null {
  return errorCodeInfo(code)?.status ?? null;
}
