/**
 * The stream library's public surface: stages and topologies (types), the runners that drive
 * them over Kafka, consumer lag, metrics and `describe`. Code outside topology/ imports only
 * this file (the dependency rule in .dependency-cruiser.cjs says so); the rest is private.
 */
export {
  defineTopology,
  groupIdOf,
  type Emit,
  type InputMessage,
  type RunningStage,
  type Sink,
  type SinkBatch,
  type SinkStage,
  type Stage,
  type StageContext,
  type Topology,
  type TransformFn,
  type TransformStage,
} from './types.js';
export { runSinkStage } from './sink-runner.js';
export { runTransformStage } from './transform-runner.js';
export { createKafkaDriver } from './kafka-driver.js';
export { computeLag, measureLag, startLagMonitor, type LagMonitor, type LagTarget, type PartitionLag } from './lag.js';
export { createStageMetrics } from './metrics.js';
export { describeTopology } from './describe.js';
