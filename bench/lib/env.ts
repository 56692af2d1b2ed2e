/** Settings a benchmark reads from its environment: a bad value stops it before anything runs. */

/** A positive number, or `fallback` when the variable is unset or empty. */
export function envNumber(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number, got ${JSON.stringify(text)}`);
  return value;
}

/** A positive integer, or `fallback` when the variable is unset or empty. */
export function envInt(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}
