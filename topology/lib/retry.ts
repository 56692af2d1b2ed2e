import { PipelineError } from '../../core/errors.js';

/** A message that can never be processed (bad data, missing object): route it to the error topic. */
export function isPoison(error: unknown): boolean {
  return error instanceof PipelineError && !error.retriable;
}

/** Exponential backoff with jitter, capped: 200 ms, 400 ms, ... up to `maxMs`. */
export function backoffMs(attempt: number, options: { baseMs?: number; maxMs?: number; random?: () => number } = {}): number {
  const { baseMs = 200, maxMs = 30_000, random = Math.random } = options;
  const exponential = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(exponential / 2 + (random() * exponential) / 2);
}

/** Sleeps in small steps, calling `tick` (a heartbeat) between them and stopping early when asked. */
export async function sleepWithHeartbeat(ms: number, tick: () => Promise<void>, stopped: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !stopped()) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(1000, deadline - Date.now())));
    await tick().catch(() => undefined);
  }
}
