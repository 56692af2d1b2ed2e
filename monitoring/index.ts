export { loadMonitoringConfig, defaultLagGroups, type MonitoringConfig, type LagTarget } from './config.js';
export { startMonitoring, lineageTopics, type Monitoring } from './server.js';
export { computeStatus, importStatuses, toJson, type ImportJson, type ImportStatus, type Lineage } from './lineage.js';
export { createLineageStore, type LineageStore } from './lineage-store.js';
