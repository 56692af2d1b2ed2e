import { errorMessage } from './errors.js';

export type HealthCheck = () => Promise<void>;

export interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; error?: string; checked_at: string }>;
}

/**
 * Runs named dependency checks for /readiness. Results are cached for `cacheMs` and
 * concurrent probes share one run, so a burst of probes cannot stampede the dependencies.
 */
export function createReadiness(checks: Record<string, HealthCheck>, options: { cacheMs?: number; timeoutMs?: number } = {}): () => Promise<Readiness> {
  const { cacheMs = 2000, timeoutMs = 2000 } = options;
  let cached: { at: number; value: Readiness } | undefined;
  let running: Promise<Readiness> | undefined;

  async function runOne(check: HealthCheck): Promise<{ ok: boolean; error?: string }> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        check(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      return { ok: true };
    } catch (error) {
      return { ok: false, error: errorMessage(error) };
    } finally {
      clearTimeout(timer);
    }
  }

  async function runAll(): Promise<Readiness> {
    const names = Object.keys(checks);
    const results = await Promise.all(names.map((name) => runOne(checks[name]!)));
    const checkedAt = new Date().toISOString();
    const value: Readiness = { ready: results.every((result) => result.ok), checks: {} };
    names.forEach((name, i) => {
      value.checks[name] = { ...results[i]!, checked_at: checkedAt };
    });
    cached = { at: Date.now(), value };
    return value;
  }

  return async () => {
    if (cached !== undefined && Date.now() - cached.at < cacheMs) return cached.value;
    running ??= runAll().finally(() => {
      running = undefined;
    });
    return running;
  };
}
