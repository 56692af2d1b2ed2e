/**
 * The retry loop both runners share: run one step of a partition's work until it succeeds, the
 * partition is no longer ours, or the caller's decision says to move on. Between attempts the
 * partition's fetching is paused, so nothing piles up in memory while it waits.
 */
import type { BatchScope } from './driver.js';

/** Exponential backoff with jitter, capped: 200 ms, 400 ms, ... up to `maxMs`. */
export function backoffMs(attempt: number, options: { baseMs?: number; maxMs?: number; random?: () => number } = {}): number {
  const { baseMs = 200, maxMs = 30_000, random = Math.random } = options;
  const exponential = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(exponential / 2 + (random() * exponential) / 2);
}

/** Waits `ms`, waking early once `stopped()` says so (checked every quarter second). */
export async function waitUnless(ms: number, stopped: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !stopped()) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(250, deadline - Date.now())));
  }
}

/** What to do after a failed attempt. */
export type RetryDecision =
  /** Try again after the backoff. */
  | 'later'
  /** Try again at once (the caller changed what the next attempt does). */
  | 'now'
  /** Give the batch up (the partition is someone else's now). */
  | 'leave';

export interface RetryClock {
  backoffMs(attempt: number): number;
  wait(ms: number, stopped: () => boolean): Promise<void>;
}

export const realClock: RetryClock = { backoffMs: (attempt) => backoffMs(attempt), wait: waitUnless };

/**
 * Runs `step` until it returns a value (returned), or until the scope ends or `decide` says
 * 'leave' (undefined is returned). `onWait` learns of every backoff, for logs and metrics.
 */
export async function retryInPlace<T>(
  scope: BatchScope,
  step: (attempt: number) => Promise<T>,
  decide: (error: unknown, attempt: number) => RetryDecision,
  options: { clock: RetryClock; onWait?: (error: unknown, attempt: number, delayMs: number) => void },
): Promise<T | undefined> {
  for (let attempt = 0; scope.isActive(); attempt++) {
    try {
      return await step(attempt);
    } catch (error) {
      const decision = decide(error, attempt);
      if (decision === 'leave') return undefined;
      if (decision === 'now') continue;
      const delay = options.clock.backoffMs(attempt);
      options.onWait?.(error, attempt, delay);
      const resume = scope.pause();
      try {
        await options.clock.wait(delay, () => !scope.isActive());
      } finally {
        resume();
      }
    }
  }
  return undefined;
}
