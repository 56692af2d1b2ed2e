/**
 * What both runners keep of a stage while it runs: its consumer group, logger and retry
 * settings, where its outputs go, and whether it is healthy. The transaction and the sink
 * write are the runners' own; this is the part that does not depend on which one runs.
 */
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { StageConsumer } from './driver.js';
import { defaultMaxAttempts } from './failures.js';
import type { StageMetrics } from './metrics.js';
import { realClock, type RetryClock } from './retry.js';
import { groupIdOf, type RunningStage, type Stage } from './types.js';

export interface StageRunDeps {
  logger: Logger;
  metrics: StageMetrics;
  maxAttempts?: number;
  clock?: RetryClock;
}

export class StageRun {
  readonly groupId: string;
  readonly logger: Logger;
  readonly clock: RetryClock;
  readonly maxAttempts: number;
  /** Set on the first assignment: the consumer is in its group. */
  joined = false;
  /** Set once stop() is called: loops of the stage end. */
  stopping = false;
  readonly #stage: Stage;
  readonly #metrics: StageMetrics;

  constructor(stage: Stage, { logger, metrics, maxAttempts = defaultMaxAttempts, clock = realClock }: StageRunDeps) {
    this.#stage = stage;
    this.#metrics = metrics;
    this.groupId = groupIdOf(stage);
    this.logger = logger.child({ stage: stage.name });
    this.clock = clock;
    this.maxAttempts = maxAttempts;
  }

  /** The topic of a declared output, or of the error route. */
  topicOf(to: string): string {
    const topic = to === 'errors' ? this.#stage.errors : this.#stage.outputs[to];
    if (topic === undefined) throw new Error(`stage ${this.#stage.name} emitted to undeclared output ${to}`);
    return topic;
  }

  /** retryInPlace's options for work on `partition`: every wait is counted and logged with `message`. */
  retryOptions(partition: number, message: string): { clock: RetryClock; onWait: (error: unknown, attempt: number, delayMs: number) => void } {
    return {
      clock: this.clock,
      onWait: (error, attempt, delayMs) => {
        this.#metrics.retries.inc({ stage: this.#stage.name });
        this.logger.warn({ partition, attempt, delay_ms: delayMs, err: errorMessage(error) }, message);
      },
    };
  }

  /** The RunningStage a runner hands back: healthy once joined until stopped; stop ends the consumer, then `close`. */
  running(consumer: StageConsumer, close: () => Promise<void> = async () => undefined): RunningStage {
    return {
      name: this.#stage.name,
      healthy: () => this.joined && !this.stopping,
      stop: async () => {
        this.stopping = true;
        await consumer.stop();
        await close();
        this.logger.info('stage stopped');
      },
    };
  }
}
