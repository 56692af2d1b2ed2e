export { createCompanyWriter, type CompanyWriter, type SinkRecord, type WriteMethod } from './company-writer.js';
// The sink's own row mapping and COPY, for bench:pipeline's ceiling.
export { companyColumnNames, companyRows, copyRows, officeColumnNames, roundColumnNames } from './company-writer.js';
export { createLoadSink } from './load-sink.js';
export { migrateUp, rollback, readMigrations } from './migrate.js';
