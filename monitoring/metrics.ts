import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createMetricsRegistry } from '../core/metrics.js';
import type { LineageEffects } from './lineage.js';

type TenantCounter = { total: Counter; byTenant: Counter<'tenant'> };

export interface MonitoringMetrics {
  registry: Registry;
  filesReceived: TenantCounter;
  filesRejected: TenantCounter;
  recordsExtracted: TenantCounter;
  recordsValid: TenantCounter;
  recordsInvalid: TenantCounter;
  recordsLoaded: TenantCounter;
  recordsRejected: TenantCounter;
  importsCompleted: TenantCounter;
  importsFailed: TenantCounter;
  importLatency: Histogram;
  consumerLag: Gauge<'group' | 'topic' | 'partition'>;
  groupLag: Gauge<'group' | 'topic'>;
  lagMeasuredAt: Gauge;
}

/**
 * Every counter comes twice: `monitoring_<name>_total` (all tenants) and
 * `monitoring_<name>_by_tenant_total{tenant}`, so the totals need no PromQL and a tenant's
 * numbers need no sum over unrelated labels.
 */
function tenantCounter(registry: Registry, name: string, help: string): TenantCounter {
  return {
    total: new Counter({ name: `monitoring_${name}_total`, help: `${help} (all tenants).`, registers: [registry] }),
    byTenant: new Counter({
      name: `monitoring_${name}_by_tenant_total`,
      help: `${help}, per tenant.`,
      labelNames: ['tenant'],
      registers: [registry],
    }),
  };
}

export function createMonitoringMetrics(): MonitoringMetrics {
  const registry = createMetricsRegistry('monitoring');
  return {
    registry,
    filesReceived: tenantCounter(registry, 'files_received', 'Files accepted by the ingress (FileExtractSuccess)'),
    filesRejected: tenantCounter(registry, 'files_rejected', 'Files refused by the ingress (FileExtractError)'),
    recordsExtracted: tenantCounter(registry, 'records_extracted', 'Records the extract stage produced (FileExtracted)'),
    recordsValid: tenantCounter(
      registry,
      'records_valid',
      'Records that passed validation and reached the database (RecordsLoaded inserted+updated+unchanged+rejected)',
    ),
    recordsInvalid: tenantCounter(registry, 'records_invalid', 'Records that broke the record contract (ValidationError)'),
    recordsLoaded: tenantCounter(registry, 'records_loaded', 'Records inserted, updated or found unchanged in the database (RecordsLoaded)'),
    recordsRejected: tenantCounter(registry, 'records_rejected', 'Valid records the database refused (RecordsLoaded rejected)'),
    importsCompleted: tenantCounter(registry, 'imports_completed', 'Imports whose every record is accounted for'),
    importsFailed: tenantCounter(registry, 'imports_failed', 'Imports refused or not extractable'),
    importLatency: new Histogram({
      name: 'monitoring_import_latency_seconds',
      help: 'End-to-end latency of an import: received by the ingress → its last record accounted for (observed once per import).',
      buckets: [0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600],
      registers: [registry],
    }),
    consumerLag: new Gauge({
      name: 'monitoring_consumer_lag',
      help: 'Messages between the group committed offset and the end of each partition.',
      labelNames: ['group', 'topic', 'partition'],
      registers: [registry],
    }),
    groupLag: new Gauge({
      name: 'monitoring_consumer_group_lag',
      help: 'Consumer lag of a group over all partitions of its topic.',
      labelNames: ['group', 'topic'],
      registers: [registry],
    }),
    lagMeasuredAt: new Gauge({
      name: 'monitoring_consumer_lag_measured_timestamp_seconds',
      help: 'When consumer lag was last measured successfully.',
      registers: [registry],
    }),
  };
}

function count(counter: TenantCounter, byTenant: Map<string, number>): void {
  for (const [tenant, n] of byTenant) {
    counter.total.inc(n);
    counter.byTenant.inc({ tenant }, n);
  }
}

/** Counts what a committed lineage batch did. */
export function recordEffects(metrics: MonitoringMetrics, effects: LineageEffects): void {
  count(metrics.filesReceived, effects.filesReceived);
  count(metrics.filesRejected, effects.filesRejected);
  count(metrics.recordsExtracted, effects.recordsExtracted);
  count(metrics.recordsValid, effects.recordsValid);
  count(metrics.recordsInvalid, effects.recordsInvalid);
  count(metrics.recordsLoaded, effects.recordsLoaded);
  count(metrics.recordsRejected, effects.recordsRejected);
  for (const completed of effects.completed) {
    count(metrics.importsCompleted, new Map([[completed.tenant, 1]]));
    if (completed.latencySeconds !== undefined) metrics.importLatency.observe(completed.latencySeconds);
  }
  for (const failed of effects.failed) count(metrics.importsFailed, new Map([[failed.tenant, 1]]));
}
