/**
 * The services `make up` runs (deployments/local/services.ts starts them): the ingress,
 * PROCESSOR_REPLICAS processor processes (default 2, so that both cores of a small machine
 * work: one Node event loop runs on one core) and monitoring. Replica i (from 0) serves
 * /liveness, /readiness and /metrics on PROCESSOR_PORT + 10·i; the replicas share the stages'
 * consumer groups, so Kafka spreads the partitions over them.
 */
import { EnvReader } from '../../core/env.js';

export interface ServiceSpec {
  name: string;
  entry: string;
  port: number;
  /** Environment of this process beyond the caller's. */
  env: Record<string, string>;
}

/** Replica i of the processor listens on the base port + this × i. */
export const processorPortStep = 10;

/** The services `make up` runs, from the environment (validated; every setting has a default). */
export function servicesOf(env: NodeJS.ProcessEnv): ServiceSpec[] {
  const reader = new EnvReader(env);
  const ingressPort = reader.int('INGRESS_PORT', 3000, { min: 1, max: 65535 });
  const processorPort = reader.int('PROCESSOR_PORT', 3001, { min: 1, max: 65535 });
  const monitoringPort = reader.int('MONITORING_PORT', 3002, { min: 1, max: 65535 });
  const replicas = reader.int('PROCESSOR_REPLICAS', 2, { min: 1, max: 64 });
  reader.done();
  const processors = Array.from({ length: replicas }, (_, index) => {
    const port = processorPort + processorPortStep * index;
    return { name: `processor-${index}`, entry: 'topology/main.ts', port, env: { PROCESSOR_PORT: String(port) } };
  });
  const ports = [ingressPort, monitoringPort, ...processors.map((processor) => processor.port)];
  const clash = ports.find((port, index) => ports.indexOf(port) !== index);
  if (clash !== undefined) {
    throw new Error(
      `port ${clash} is taken twice: the processor replicas use PROCESSOR_PORT + ${processorPortStep}·i (PROCESSOR_PORT=${processorPort}, PROCESSOR_REPLICAS=${replicas}); move INGRESS_PORT or MONITORING_PORT`,
    );
  }
  return [
    { name: 'ingress', entry: 'ingress/main.ts', port: ingressPort, env: {} },
    ...processors,
    { name: 'monitoring', entry: 'monitoring/main.ts', port: monitoringPort, env: {} },
  ];
}
