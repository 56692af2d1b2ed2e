export { createCompanyWriter, type CompanyWriter, type SinkRecord } from './company-writer.js';
export { createLoadSink } from './load-sink.js';
export { migrateUp, rollback, readMigrations } from './migrate.js';
