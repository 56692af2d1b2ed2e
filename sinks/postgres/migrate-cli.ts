/** `tsx sinks/postgres/migrate-cli.ts up|down|status` against the configured database. */
import { loadConfig } from '../../core/config.js';
import { createPostgres } from '../../core/postgres.js';
import { appliedVersions, migrateUp, readMigrations, rollback } from './migrate.js';

const command = process.argv[2] ?? 'up';
const config = loadConfig();
const postgres = createPostgres(config.postgres, { applicationName: 'etl-migrate' });
try {
  if (command === 'up') {
    const applied = await migrateUp(postgres.db);
    process.stdout.write(applied.length === 0 ? 'no pending migrations\n' : `applied ${applied.join(', ')}\n`);
  } else if (command === 'down') {
    const undone = await rollback(postgres.db);
    process.stdout.write(undone === undefined ? 'nothing to roll back\n' : `rolled back ${undone}\n`);
  } else if (command === 'status') {
    const applied = new Set(await appliedVersions(postgres.db));
    for (const migration of readMigrations()) {
      process.stdout.write(`${applied.has(migration.version) ? 'applied' : 'pending'}  ${migration.version}_${migration.name}\n`);
    }
  } else {
    throw new Error(`unknown command ${command}: use up, down or status`);
  }
} catch (error) {
  process.stderr.write(`migrate ${command} failed: ${(error as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await postgres.close();
}
