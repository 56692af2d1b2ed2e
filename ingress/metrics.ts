import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createMetricsRegistry } from '../core/metrics.js';

export interface IngressMetrics {
  registry: Registry;
  requests: Counter<'route' | 'status'>;
  requestSeconds: Histogram<'route'>;
  bytesIngested: Counter;
  recordsCounted: Counter;
  eventsProduced: Counter<'event_type' | 'result'>;
  s3Seconds: Histogram<'operation' | 'result'>;
  kafkaSendSeconds: Histogram<'result'>;
  uploadsInFlight: Gauge;
  dedupeHits: Counter;
  claimFailures: Counter<'operation'>;
}

export function createIngressMetrics(): IngressMetrics {
  const registry = createMetricsRegistry('ingress');
  const latency = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  return {
    registry,
    requests: new Counter({
      name: 'ingress_http_requests_total',
      help: 'HTTP requests by route and status code.',
      labelNames: ['route', 'status'],
      registers: [registry],
    }),
    requestSeconds: new Histogram({
      name: 'ingress_http_request_duration_seconds',
      help: 'Time from the first byte of a request to its answer.',
      labelNames: ['route'],
      buckets: latency,
      registers: [registry],
    }),
    bytesIngested: new Counter({
      name: 'ingress_bytes_ingested_total',
      help: 'Bytes of accepted files (stored and announced).',
      registers: [registry],
    }),
    recordsCounted: new Counter({
      name: 'ingress_records_counted_total',
      help: 'Records counted in accepted files while they streamed in.',
      registers: [registry],
    }),
    eventsProduced: new Counter({
      name: 'ingress_events_produced_total',
      help: 'Events produced, by type and result (ok: acknowledged by Kafka with acks=all).',
      labelNames: ['event_type', 'result'],
      registers: [registry],
    }),
    s3Seconds: new Histogram({
      name: 'ingress_s3_request_duration_seconds',
      help: 'S3 call latency by operation and result.',
      labelNames: ['operation', 'result'],
      buckets: latency,
      registers: [registry],
    }),
    kafkaSendSeconds: new Histogram({
      name: 'ingress_kafka_send_duration_seconds',
      help: 'Time from handing one event to the producer until the brokers acknowledged it (acks=all).',
      labelNames: ['result'],
      buckets: latency,
      registers: [registry],
    }),
    uploadsInFlight: new Gauge({
      name: 'ingress_uploads_in_flight',
      help: 'Imports currently streaming in.',
      registers: [registry],
    }),
    dedupeHits: new Counter({
      name: 'ingress_dedupe_hits_total',
      help: 'Retries answered with the first result of their request id.',
      registers: [registry],
    }),
    claimFailures: new Counter({
      name: 'ingress_claim_failures_total',
      help: 'Durable request-id claims that could not be written (operation: claim, renew, complete, release).',
      labelNames: ['operation'],
      registers: [registry],
    }),
  };
}
