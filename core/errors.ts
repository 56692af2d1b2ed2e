/**
 * Every error the pipeline raises carries a stable `code` that callers match on, and says
 * whether retrying can help. Causes are kept (`cause`), never swallowed.
 */
export class PipelineError extends Error {
  readonly code: string;
  readonly retriable: boolean;

  constructor(code: string, message: string, options: { cause?: unknown; retriable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}

/** A setting from the environment is missing or malformed; the message names the variable. */
export class ConfigError extends PipelineError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super('ERR_CONFIG', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/** The uWebSockets.js native binary did not load and the JS fallback was not allowed. */
export class NativeServerUnavailableError extends PipelineError {
  constructor(message: string, cause?: unknown) {
    super('ERR_UWS_NATIVE_UNAVAILABLE', message, { cause });
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
