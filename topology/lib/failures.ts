/**
 * What a runner does about a failure, decided on the error's class and codes, never on its text:
 *
 * - `poison`: the message can never be processed (a non-retriable PipelineError): it becomes a
 *   ProcessingError at once and the partition goes on.
 * - `transient`: the infrastructure failed (a broker, S3 or PostgreSQL unreachable, a timeout):
 *   retried with backoff from the same position for as long as it takes.
 * - `fenced`: another replica owns the partition now (its producer fenced ours, or the group
 *   moved on): abandon the batch, its messages belong to the new owner.
 * - `bug`: anything else (a TypeError in a stage, a table the database no longer has): retried
 *   a bounded number of times, then treated as poison, so one bad message never stalls a
 *   partition for good.
 */
import { PipelineError } from '../../core/errors.js';

export type FailureKind = 'poison' | 'transient' | 'fenced' | 'bug';

/** librdkafka's codes (KafkaJSError.code) that mean the partition or the producer is someone else's now. */
const fencedKafkaCodes = new Set([
  -144, // ERR__FENCED: the producer was fenced by a newer instance with the same transactional id
  47, // INVALID_PRODUCER_EPOCH
  90, // PRODUCER_FENCED
  22, // ILLEGAL_GENERATION: the group rebalanced; the offsets belong to the next generation
  25, // UNKNOWN_MEMBER_ID
  27, // REBALANCE_IN_PROGRESS
  -142, // ERR__ASSIGNMENT_LOST
]);

/** Node's network error codes: the peer is down or unreachable. */
const networkCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
]);

/**
 * PostgreSQL SQLSTATE classes that are the server's condition, not the query's: connection
 * exceptions (08), transaction rollback such as a deadlock (40), insufficient resources (53),
 * operator intervention such as a restart (57), and system errors (58).
 */
const transientSqlStateClasses = new Set(['08', '40', '53', '57', '58']);

function isKafkaClientError(error: object): error is { code: number; fatal?: boolean; retriable?: boolean; name: string } {
  const { name, code } = error as { name?: unknown; code?: unknown };
  return typeof name === 'string' && name.startsWith('KafkaJS') && typeof code === 'number';
}

export function classifyFailure(error: unknown): FailureKind {
  if (error instanceof PipelineError) return error.retriable ? 'transient' : 'poison';
  if (typeof error !== 'object' || error === null) return 'bug';
  if (isKafkaClientError(error)) return fencedKafkaCodes.has(error.code) ? 'fenced' : 'transient';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (networkCodes.has(code)) return 'transient';
    if (/^[0-9A-Z]{5}$/.test(code)) return transientSqlStateClasses.has(code.slice(0, 2)) ? 'transient' : 'bug';
  }
  // The AWS SDK marks what its own retries would have retried, and gives the HTTP status.
  const aws = error as { $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  if (aws.$retryable !== undefined) return 'transient';
  if (aws.$metadata !== undefined) return (aws.$metadata.httpStatusCode ?? 500) >= 500 ? 'transient' : 'bug';
  // pg-promise and pg wrap a lost connection in plain Errors that keep the cause.
  const cause = (error as { cause?: unknown }).cause;
  if (cause !== undefined && cause !== error) {
    const underlying = classifyFailure(cause);
    if (underlying !== 'bug') return underlying;
  }
  if (/Connection terminated|connection is closed|Client has encountered a connection error/i.test((error as Error).message ?? '')) {
    return 'transient';
  }
  return 'bug';
}

/** How many times a message failing with a `bug` is tried before it is routed as poison. */
export const defaultMaxAttempts = 5;
