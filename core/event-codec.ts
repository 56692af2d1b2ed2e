/**
 * Avro events through the Schema Registry: each topic's value schema is registered under
 * `<topic>-value`, held to FULL compatibility (a subject already held to FULL_TRANSITIVE keeps
 * it), and values are written in the Confluent wire format (magic byte 0, 4-byte schema id,
 * Avro binary). Once registered, encoding uses the cached schema, so a registry outage does
 * not stop already-known events. A schema the registry refuses as incompatible stops the
 * service at start-up (IncompatibleSchemaError, not retriable): see schemas/README.md.
 */
import { COMPATIBILITY, SchemaType, type SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { request } from 'undici';
import type { AvroSchema } from '../schemas/index.js';
import { PipelineError } from './errors.js';

export interface EventCodec {
  /** Registers (idempotently) the topic's schema; returns its registry id. */
  register(topic: string, schema: AvroSchema): Promise<number>;
  encode(topic: string, value: unknown): Promise<Buffer>;
  decode<T = unknown>(buffer: Buffer): Promise<T>;
  schemaId(topic: string): number | undefined;
  /** Cheap liveness probe of the registry, for /readiness. */
  ping(): Promise<void>;
}

export const avroContentType = 'application/vnd.etl.avro';

/**
 * The rule every event subject is held to. BACKWARD alone lets a next version drop a field
 * that has no default, which services still built with the previous schema need: FULL also
 * checks that the previous schema reads the new version's events (FORWARD).
 */
export const compatibilityRule = COMPATIBILITY.FULL;

/** Levels at least as strict as the rule: a subject already held to one of them keeps it. */
const atLeastRule: ReadonlySet<string> = new Set([COMPATIBILITY.FULL, COMPATIBILITY.FULL_TRANSITIVE]);

export function subjectOf(topic: string): string {
  return `${topic}-value`;
}

/** The registry refused a schema under the subject's compatibility rule; restarting cannot help. */
export class IncompatibleSchemaError extends PipelineError {
  readonly subject: string;
  /** The subject's compatibility level, as read back from the registry after the refusal. */
  readonly compatibility: string;
  /** The subject's latest version when the schema was refused (undefined if it could not be read). */
  readonly latestVersion: number | undefined;
  /** The registry's own explanation. */
  readonly reason: string;

  constructor(details: { subject: string; compatibility: string; latestVersion: number | undefined; reason: string }, cause?: unknown) {
    const { subject, compatibility, latestVersion, reason } = details;
    const against =
      latestVersion === undefined
        ? 'its registered versions'
        : compatibility.endsWith('_TRANSITIVE')
          ? `versions up to ${latestVersion}`
          : `version ${latestVersion}`;
    super(
      'ERR_SCHEMA_INCOMPATIBLE',
      `schema for subject ${subject} is incompatible with ${against} under ${compatibility}: ${reason} (see schemas/README.md)`,
      { cause, retriable: false },
    );
    this.subject = subject;
    this.compatibility = compatibility;
    this.latestVersion = latestVersion;
    this.reason = reason;
  }
}

/**
 * What a failed registration means for the caller: `incompatible` (409, the rule refused the
 * schema), `refused` (another 4xx: the request itself is wrong, retrying sends it again) or
 * `unavailable` (transport errors, timeouts, 5xx, 408, 429: a later attempt may succeed).
 */
export type RegistrationFailure =
  { kind: 'incompatible'; reason: string } | { kind: 'refused'; status: number; reason: string } | { kind: 'unavailable'; reason: string };

export function classifyRegistrationFailure(error: unknown): RegistrationFailure {
  const status = statusOf(error);
  const reason = registryReason(error);
  if (status === 409 || errorCodeOf(error) === 409) return { kind: 'incompatible', reason };
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
    return { kind: 'refused', status, reason };
  }
  return { kind: 'unavailable', reason };
}

/** The HTTP status of a registry client's ResponseError (`status`), or of an HTTP error carrying `statusCode`. */
function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { status, statusCode } = error as { status?: unknown; statusCode?: unknown };
  if (typeof status === 'number') return status;
  return typeof statusCode === 'number' ? statusCode : undefined;
}

/** The Confluent API's `error_code` when the error kept the response body. */
function errorCodeOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const body = (error as { body?: unknown; data?: unknown }).body ?? (error as { data?: unknown }).data ?? error;
  const code = typeof body === 'object' && body !== null ? (body as { error_code?: unknown }).error_code : undefined;
  return typeof code === 'number' ? code : undefined;
}

/**
 * The registry's message without the client's prefix (`Confluent_Schema_Registry - `) or the
 * Java exception class Apicurio puts first (`io.apicurio.registry.rules.RuleViolationException: `).
 */
export function registryReason(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message
    .replace(/^\S+ - /, '')
    .replace(/^(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error): /, '')
    .trim();
}

export function createEventCodec(registry: SchemaRegistry, registryUrl: string): EventCodec {
  const ids = new Map<string, number>();
  const base = registryUrl.replace(/\/+$/, '');

  async function call(method: 'GET' | 'PUT', path: string, body?: unknown): Promise<{ status: number; text: string }> {
    const response = await request(`${base}${path}`, {
      method,
      headers: { accept: 'application/vnd.schemaregistry.v1+json', 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      headersTimeout: 5000,
      bodyTimeout: 5000,
    });
    return { status: response.statusCode, text: await response.body.text() };
  }

  /** The subject's compatibility level, or undefined when none is set on it. */
  async function compatibilityOf(subject: string): Promise<string | undefined> {
    const { status, text } = await call('GET', `/config/${encodeURIComponent(subject)}`);
    if (status === 404) return undefined;
    if (status !== 200) {
      throw new PipelineError('ERR_REGISTRY_CONFIG', `reading the compatibility of ${subject} failed: ${status} ${text}`, {
        retriable: status >= 500,
      });
    }
    const level = (JSON.parse(text) as { compatibilityLevel?: unknown }).compatibilityLevel;
    return typeof level === 'string' ? level.toUpperCase() : undefined;
  }

  /** Holds the subject to the rule unless it is held to a stricter one already; returns the level in force. */
  async function holdToRule(subject: string): Promise<string> {
    const level = await compatibilityOf(subject);
    if (level !== undefined && atLeastRule.has(level)) return level;
    const { status, text } = await call('PUT', `/config/${encodeURIComponent(subject)}`, { compatibility: compatibilityRule });
    if (status >= 300) {
      throw new PipelineError('ERR_REGISTRY_CONFIG', `setting ${compatibilityRule} compatibility on ${subject} failed: ${status} ${text}`, {
        retriable: status >= 500,
      });
    }
    return compatibilityRule;
  }

  async function latestVersionOf(subject: string): Promise<number | undefined> {
    const { status, text } = await call('GET', `/subjects/${encodeURIComponent(subject)}/versions/latest`);
    if (status !== 200) return undefined;
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === 'number' ? version : undefined;
  }

  /** Names the rule that refused the schema as the registry has it now; what was set stands in if it cannot be read. */
  async function incompatible(subject: string, levelSet: string, reason: string, cause: unknown): Promise<IncompatibleSchemaError> {
    const [compatibility, latestVersion] = await Promise.all([
      compatibilityOf(subject).then(
        (level) => level ?? levelSet,
        () => levelSet,
      ),
      latestVersionOf(subject).catch(() => undefined),
    ]);
    return new IncompatibleSchemaError({ subject, compatibility, latestVersion, reason }, cause);
  }

  return {
    async register(topic, schema) {
      const subject = subjectOf(topic);
      let level: string | undefined;
      try {
        level = await holdToRule(subject);
        const { id } = await registry.register(
          { type: SchemaType.AVRO, schema: JSON.stringify(schema) },
          // The client checks the subject's level against this one before registering.
          { subject, compatibility: level as COMPATIBILITY },
        );
        ids.set(topic, id);
        return id;
      } catch (error) {
        if (error instanceof PipelineError) throw error;
        const failure = classifyRegistrationFailure(error);
        if (failure.kind === 'incompatible') throw await incompatible(subject, level ?? compatibilityRule, failure.reason, error);
        throw new PipelineError('ERR_REGISTRY_REGISTER', `registering ${subject} failed: ${String(error)}`, {
          cause: error,
          retriable: failure.kind === 'unavailable',
        });
      }
    },
    async encode(topic, value) {
      const id = ids.get(topic);
      if (id === undefined) {
        throw new PipelineError('ERR_SCHEMA_NOT_REGISTERED', `no schema registered for topic ${topic}`);
      }
      return registry.encode(id, value);
    },
    async decode<T>(buffer: Buffer) {
      return (await registry.decode(buffer)) as T;
    },
    schemaId(topic) {
      return ids.get(topic);
    },
    async ping() {
      const response = await request(`${base}/subjects`, { headersTimeout: 2000, bodyTimeout: 2000 });
      await response.body.dump();
      if (response.statusCode !== 200) throw new Error(`schema registry answered ${response.statusCode}`);
    },
  };
}
