/** The ingress's own /metrics (prom-client text), for the "what limits it" diagnosis. */
import { type Sample, metric } from '../lib/metrics.js';

export interface IngressBreakdown {
  windowSeconds: number;
  requestMeanMs: number;
  s3PutMeanMs: number;
  s3PutCount: number;
  /** Mean time from handing one event to the producer until acks=all acknowledged it. */
  kafkaSendMeanMs: number;
  /** Events acknowledged (one per send: librdkafka batches them itself, for linger.ms). */
  kafkaSends: number;
  /** Sum of per-event send durations / window: the mean number of events awaiting their ack (Little's law). */
  kafkaInFlight: number;
  eventLoopLagP99Ms: number;
  s3Operations: Record<string, { count: number; meanMs: number; sumSeconds: number }>;
}

export interface MetricsWindow {
  before: Sample[];
  after: Sample[];
  seconds: number;
}

/** The ingress's own view of one or more measured windows (deltas of its counters and histograms). */
export function breakdown(windows: MetricsWindow[]): IngressBreakdown {
  const delta = (name: string, labels: Record<string, string> = {}) =>
    windows.reduce((sum, window) => sum + metric(window.after, name, labels) - metric(window.before, name, labels), 0);
  const mean = (base: string, labels: Record<string, string> = {}) => {
    const count = delta(`${base}_count`, labels);
    return count === 0 ? Number.NaN : delta(`${base}_sum`, labels) / count;
  };
  const windowSeconds = windows.reduce((sum, window) => sum + window.seconds, 0);
  const s3Operations: IngressBreakdown['s3Operations'] = {};
  for (const sample of windows.at(-1)?.after ?? []) {
    if (sample.name !== 'ingress_s3_request_duration_seconds_count') continue;
    const operation = sample.labels.operation ?? '?';
    const labels = { operation, result: sample.labels.result ?? 'ok' };
    const count = delta('ingress_s3_request_duration_seconds_count', labels);
    if (count === 0) continue;
    const sumSeconds = delta('ingress_s3_request_duration_seconds_sum', labels);
    s3Operations[`${operation}/${labels.result}`] = { count, meanMs: (sumSeconds / count) * 1000, sumSeconds };
  }
  return {
    windowSeconds,
    requestMeanMs: mean('ingress_http_request_duration_seconds') * 1000,
    s3PutMeanMs: mean('ingress_s3_request_duration_seconds', { operation: 'PutObject', result: 'ok' }) * 1000,
    s3PutCount: delta('ingress_s3_request_duration_seconds_count', { operation: 'PutObject', result: 'ok' }),
    kafkaSendMeanMs: mean('ingress_kafka_send_duration_seconds', { result: 'ok' }) * 1000,
    kafkaSends: delta('ingress_kafka_send_duration_seconds_count', { result: 'ok' }),
    kafkaInFlight: delta('ingress_kafka_send_duration_seconds_sum') / windowSeconds,
    // prom-client resets its event-loop histogram at every scrape: each `after` covers its window.
    eventLoopLagP99Ms: Math.max(...windows.map((window) => metric(window.after, 'nodejs_eventloop_lag_p99_seconds'))) * 1000,
    s3Operations,
  };
}
