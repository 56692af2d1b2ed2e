import pgPromise, { type IDatabase, type IMain } from 'pg-promise';
import type { PostgresConfig } from './config.js';

export type Db = IDatabase<unknown>;

export interface Postgres {
  pgp: IMain;
  db: Db;
  close(): Promise<void>;
}

export function createPostgres(config: PostgresConfig, options: { applicationName?: string } = {}): Postgres {
  const pgp = pgPromise({ capSQL: true });
  const db = pgp({
    host: config.host,
    port: config.port,
    database: config.database,
    user: config.user,
    password: config.password,
    max: config.poolMax,
    application_name: options.applicationName ?? 'etl',
  });
  return {
    pgp,
    db,
    async close() {
      await db.$pool.end();
    },
  };
}
