/** How a benchmark process logs, starts and ends: the same for every benchmark. */
import { runningChildren, stopChild } from './children.js';

export type Log = (message: string) => void;

/** Lines on stderr, `[<prefix>] message`: stdout is kept for the report. */
export function createLog(prefix: string): Log {
  return (message) => {
    process.stderr.write(`[${prefix}] ${message}\n`);
  };
}

/** On Ctrl-C: SIGTERM to the children this run started, a word on what may be left behind, exit 130. */
export function stopOnInterrupt(log: Log, leftBehind: () => string): void {
  process.once('SIGINT', () => {
    log('interrupted: stopping the servers this run started');
    for (const child of runningChildren()) child.proc.kill('SIGTERM');
    log(leftBehind());
    process.exit(130);
  });
}

/** Runs `main`; a failure is logged with its stack, this run's children are stopped and the exit code is 1. */
export async function runMain(log: Log, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    for (const child of runningChildren()) await stopChild(child);
    process.exitCode = 1;
  }
}
