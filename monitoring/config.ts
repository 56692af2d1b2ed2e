import { readConfig, type Config } from '../core/config.js';
import { EnvReader } from '../core/env.js';
import { topics } from '../core/pipeline.js';
import { tenantTokensSetting } from '../core/tenant-tokens.js';
import type { LagTarget } from '../topology/lib/index.js';

export type { LagTarget };

export interface MonitoringConfig extends Config {
  monitoring: {
    /** MONITORING_HOST */
    host: string;
    /** MONITORING_PORT: the lineage API, the page, /liveness, /readiness, /metrics. */
    port: number;
    /** MONITORING_GROUP_PREFIX: consumer group of each event topic is `<prefix><topic>`. */
    groupPrefix: string;
    /** MONITORING_BATCH_MAX_RECORDS: most events per lineage transaction. */
    batchMaxRecords: number;
    /** MONITORING_BATCH_LINGER_MS: how long a fetch may wait to fill a batch (the page's delay). */
    batchLingerMs: number;
    /** MONITORING_BATCH_MAX_BYTES: bytes per partition per fetch. */
    batchMaxBytes: number;
    /** MONITORING_LAG_INTERVAL_MS: how often consumer lag is measured. */
    lagIntervalMs: number;
    /**
     * MONITORING_LAG_GROUPS: `group=topic,...` of the pipeline's stages whose lag is measured
     * (the monitoring's own groups are always added). Default: etl-split, etl-extract, etl-validate, etl-load.
     */
    lagGroups: LagTarget[];
    /** MONITORING_READINESS_CACHE_MS */
    readinessCacheMs: number;
    /** MONITORING_PAGE_LIMIT: imports listed on the page (GET /). */
    pageLimit: number;
    /** MONITORING_ERROR_RETENTION_DAYS: error report entries older than this are deleted (checked hourly). */
    errorRetentionDays: number;
    /**
     * MONITORING_TENANT_TOKENS (tenant:token,... or a JSON object; or MONITORING_TENANT_TOKENS_FILE):
     * a tenant's token shows only that tenant's imports. Empty (default): no tokens asked for.
     */
    tenantTokens: Record<string, string>;
    /** MONITORING_OPERATOR_TOKEN (or _FILE): sees every tenant. Setting it also makes tokens required. */
    operatorToken: string | undefined;
    /** REPLAY_PIECE_BYTES: a replayed file's piece size (as the ingress's INGRESS_PIECE_BYTES). */
    replayPieceBytes: number;
    /**
     * MONITORING_COOKIE_SECURE (default false): the sign-in cookie always carries Secure. Without
     * it, the cookie carries Secure when the sign-in came over HTTPS (X-Forwarded-Proto or
     * Forwarded of the TLS-terminating proxy).
     */
    cookieSecure: boolean;
  };
}

export const defaultLagGroups: readonly LagTarget[] = [
  { group: 'etl-split', topic: topics.fileExtractSuccess.name },
  { group: 'etl-extract', topic: topics.filePiece.name },
  { group: 'etl-validate', topic: topics.recordExtracted.name },
  { group: 'etl-load', topic: topics.recordValidated.name },
];

export function parseLagGroups(items: readonly string[]): { targets: LagTarget[]; bad: string[] } {
  const targets: LagTarget[] = [];
  const bad: string[] = [];
  for (const item of items) {
    const match = /^([^=\s]+)=([A-Za-z0-9._-]+)$/.exec(item);
    if (match === null) bad.push(item);
    else targets.push({ group: match[1]!, topic: match[2]! });
  }
  return { targets, bad };
}

/**
 * A token shared by two tenants would show one tenant's imports to the other, and a tenant token
 * equal to the operator's would make that tenant an operator: both are refused, naming the
 * tenants (never the token).
 */
export function sharedTokenProblems(tenantTokens: Record<string, string>, operatorToken: string | undefined): string[] {
  const byToken = new Map<string, string[]>();
  for (const [tenant, token] of Object.entries(tenantTokens)) byToken.set(token, [...(byToken.get(token) ?? []), tenant]);
  const problems: string[] = [];
  for (const tenants of byToken.values()) {
    if (tenants.length > 1) problems.push(`MONITORING_TENANT_TOKENS: tenants ${tenants.join(', ')} have the same token; give each tenant its own`);
  }
  const asOperator = operatorToken === undefined ? undefined : byToken.get(operatorToken);
  if (asOperator !== undefined) {
    problems.push(
      `MONITORING_OPERATOR_TOKEN: is the token of tenant ${asOperator.join(', ')} in MONITORING_TENANT_TOKENS; the operator needs a token of its own`,
    );
  }
  return problems;
}

export function loadMonitoringConfig(env: NodeJS.ProcessEnv = process.env): MonitoringConfig {
  const reader = new EnvReader(env);
  const base = readConfig(reader);
  const lag = parseLagGroups(
    reader.list(
      'MONITORING_LAG_GROUPS',
      defaultLagGroups.map((target) => `${target.group}=${target.topic}`),
    ),
  );
  if (lag.bad.length > 0) reader.problems.push(`MONITORING_LAG_GROUPS: expected group=topic[,group=topic...], bad entries: ${lag.bad.join(', ')}`);
  const config: MonitoringConfig = {
    ...base,
    monitoring: {
      host: reader.string('MONITORING_HOST', '127.0.0.1'),
      port: reader.int('MONITORING_PORT', 3002, { min: 0, max: 65535 }),
      groupPrefix: reader.string('MONITORING_GROUP_PREFIX', 'etl-monitoring-', (value) =>
        /^[A-Za-z0-9._-]+$/.test(value) ? undefined : 'letters, digits, ".", "_" and "-" only',
      ),
      batchMaxRecords: reader.int('MONITORING_BATCH_MAX_RECORDS', 1000, { min: 1, max: 100_000 }),
      batchLingerMs: reader.int('MONITORING_BATCH_LINGER_MS', 200, { min: 0, max: 60_000 }),
      batchMaxBytes: reader.int('MONITORING_BATCH_MAX_BYTES', 1024 * 1024, { min: 1024 }),
      lagIntervalMs: reader.int('MONITORING_LAG_INTERVAL_MS', 5000, { min: 100 }),
      lagGroups: lag.targets,
      readinessCacheMs: reader.int('MONITORING_READINESS_CACHE_MS', 2000, { min: 0 }),
      pageLimit: reader.int('MONITORING_PAGE_LIMIT', 50, { min: 1, max: 500 }),
      errorRetentionDays: reader.int('MONITORING_ERROR_RETENTION_DAYS', 30, { min: 1, max: 3650 }),
      tenantTokens: tenantTokensSetting(reader, 'MONITORING_TENANT_TOKENS', reader.optional('MONITORING_TENANT_TOKENS')),
      operatorToken: reader.optional('MONITORING_OPERATOR_TOKEN'),
      replayPieceBytes: reader.int('REPLAY_PIECE_BYTES', 4 * 1024 * 1024, { min: 1024 }),
      cookieSecure: reader.bool('MONITORING_COOKIE_SECURE', false),
    },
  };
  reader.problems.push(...sharedTokenProblems(config.monitoring.tenantTokens, config.monitoring.operatorToken));
  reader.done();
  return config;
}
