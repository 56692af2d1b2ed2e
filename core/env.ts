import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';

/**
 * Reads typed settings from an environment and collects every problem before failing, so
 * one start-up attempt reports all bad variables at once, each by name.
 */
export class EnvReader {
  readonly problems: string[] = [];
  readonly #env: NodeJS.ProcessEnv;

  constructor(env: NodeJS.ProcessEnv) {
    this.#env = env;
  }

  #raw(name: string): string | undefined {
    const value = this.#env[name];
    if (value !== undefined && value.trim() !== '') return value.trim();
    // Credentials may be mounted as files (Kubernetes/Docker secrets): NAME_FILE=/path.
    const file = this.#env[`${name}_FILE`];
    if (file !== undefined && file.trim() !== '') {
      try {
        return readFileSync(file.trim(), 'utf8').trim();
      } catch (error) {
        this.problems.push(`${name}_FILE: cannot read ${file}: ${(error as Error).message}`);
      }
    }
    return undefined;
  }

  string(name: string, fallback: string, check?: (value: string) => string | undefined): string {
    const value = this.#raw(name) ?? fallback;
    const problem = check?.(value);
    if (problem !== undefined) {
      this.problems.push(`${name}=${JSON.stringify(value)}: ${problem}`);
    }
    return value;
  }

  /** A setting with no safe default: its absence is an error. */
  required(name: string): string {
    const value = this.#raw(name);
    if (value === undefined) {
      this.problems.push(`${name}: required, not set`);
      return '';
    }
    return value;
  }

  optional(name: string): string | undefined {
    return this.#raw(name);
  }

  int(name: string, fallback: number, bounds: { min?: number; max?: number } = {}): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    if (!/^-?\d+$/.test(raw)) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: expected an integer`);
      return fallback;
    }
    const value = Number(raw);
    if (bounds.min !== undefined && value < bounds.min) {
      this.problems.push(`${name}=${raw}: must be >= ${bounds.min}`);
    }
    if (bounds.max !== undefined && value > bounds.max) {
      this.problems.push(`${name}=${raw}: must be <= ${bounds.max}`);
    }
    return value;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const lowered = raw.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(lowered)) return true;
    if (['0', 'false', 'no', 'off'].includes(lowered)) return false;
    this.problems.push(`${name}=${JSON.stringify(raw)}: expected true or false`);
    return fallback;
  }

  list(name: string, fallback: readonly string[]): string[] {
    const raw = this.#raw(name);
    if (raw === undefined) return [...fallback];
    const items = raw
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
    if (items.length === 0) this.problems.push(`${name}: expected a comma-separated list`);
    return items;
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const raw = this.#raw(name) ?? fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: expected one of ${allowed.join(', ')}`);
      return fallback;
    }
    return raw as T;
  }

  /** Throws one ConfigError naming every bad variable. */
  done(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }
}

export function checkUrl(value: string): string | undefined {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? undefined : 'expected an http(s) URL';
  } catch {
    return 'expected a URL';
  }
}

export function checkHostPortList(value: string): string | undefined {
  const bad = value.split(',').filter((item) => !/^[^\s:,]+:\d{1,5}$/.test(item.trim()));
  return bad.length === 0 ? undefined : `expected host:port[,host:port...], bad entries: ${bad.join(', ')}`;
}
