/**
 * A small migration runner: plain SQL files `NNNN_name.up.sql` / `NNNN_name.down.sql`, applied
 * in order, each in its own transaction, tracked in `schema_migrations`. A session advisory
 * lock keeps two runners (two replicas starting at once) from applying the same file twice.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from '../../core/postgres.js';
import { PipelineError } from '../../core/errors.js';

export const migrationsDir = join(dirname(fileURLToPath(import.meta.url)), 'migrations');

export interface Migration {
  version: string;
  name: string;
  up: string;
  down: string;
}

// Any constant shared by every runner of this database.
const lockKey = 4_242_001;

export function readMigrations(dir: string = migrationsDir): Migration[] {
  const files = readdirSync(dir);
  const ups = files.filter((file) => /^\d{4}_[a-z0-9_]+\.up\.sql$/.test(file)).sort();
  return ups.map((file) => {
    const base = file.replace(/\.up\.sql$/, '');
    const downFile = `${base}.down.sql`;
    if (!files.includes(downFile)) {
      throw new PipelineError('ERR_MIGRATION_MISSING_DOWN', `migration ${file} has no ${downFile}`);
    }
    const [version = '', ...name] = base.split('_');
    return {
      version,
      name: name.join('_'),
      up: readFileSync(join(dir, file), 'utf8'),
      down: readFileSync(join(dir, downFile), 'utf8'),
    };
  });
}

async function withLock<T>(db: Db, work: (task: Db) => Promise<T>): Promise<T> {
  return db.task(async (task) => {
    await task.one('SELECT pg_advisory_lock($1)', [lockKey]);
    try {
      await task.none(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version text PRIMARY KEY,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
      return await work(task as unknown as Db);
    } finally {
      await task.one('SELECT pg_advisory_unlock($1)', [lockKey]);
    }
  });
}

export async function appliedVersions(db: Db): Promise<string[]> {
  const exists = await db.oneOrNone<{ name: string }>("SELECT to_regclass('schema_migrations')::text AS name");
  if (exists?.name == null) return [];
  const rows = await db.any<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version');
  return rows.map((row) => row.version);
}

/** Applies every pending migration; returns the versions applied. */
export async function migrateUp(db: Db, migrations: Migration[] = readMigrations()): Promise<string[]> {
  return withLock(db, async (task) => {
    const done = new Set(await appliedVersions(task));
    const applied: string[] = [];
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      await task.tx(async (tx) => {
        await tx.none(migration.up);
        await tx.none('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      });
      applied.push(migration.version);
    }
    return applied;
  });
}

/** Undoes the last applied migration; returns its version, or undefined when none is applied. */
export async function rollback(db: Db, migrations: Migration[] = readMigrations()): Promise<string | undefined> {
  return withLock(db, async (task) => {
    const versions = await appliedVersions(task);
    const last = versions.at(-1);
    if (last === undefined) return undefined;
    const migration = migrations.find((candidate) => candidate.version === last);
    if (migration === undefined) {
      throw new PipelineError('ERR_MIGRATION_UNKNOWN', `applied migration ${last} has no file in ${migrationsDir}`);
    }
    await task.tx(async (tx) => {
      await tx.none(migration.down);
      await tx.none('DELETE FROM schema_migrations WHERE version = $1', [last]);
    });
    return last;
  });
}
