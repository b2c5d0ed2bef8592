import { sql, type Kysely } from 'kysely'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Applies sql/NNNN_name.sql in order, each in its own transaction, under a
 * lock so instances booting together apply each file exactly once. Applied
 * files are recorded with a sha256 checksum; a changed applied file stops
 * the start (migrations are append-only).
 */

export type AppliedMigration = { name: string; checksum: string }

export type MigrationSession = {
  ensureTable(): Promise<void>
  applied(): Promise<AppliedMigration[]>
  apply(name: string, checksum: string, text: string): Promise<void>
}

export type MigrationTarget = {
  withLock<T>(run: (session: MigrationSession) => Promise<T>): Promise<T>
}

export class MigrationChanged extends Error {
  constructor(readonly file: string) {
    super(
      `migration ${file} was changed after it was applied; migrations are append-only: restore it and add a new file instead`,
    )
    this.name = 'MigrationChanged'
  }
}

const FILE = /^\d{4}_[a-z0-9_]+\.sql$/

export const SQL_DIR = join(import.meta.dir, '..', '..', 'sql')

export function readMigrations(dir = SQL_DIR) {
  return readdirSync(dir)
    .filter((f) => FILE.test(f))
    .sort()
    .map((name) => {
      const text = readFileSync(join(dir, name), 'utf8')
      const checksum = new Bun.CryptoHasher('sha256').update(text).digest('hex')
      return { name, text, checksum }
    })
}

/** Returns the names applied by this call (empty when the schema was current). */
export async function migrate(target: MigrationTarget, dir = SQL_DIR): Promise<string[]> {
  const files = readMigrations(dir)
  return target.withLock(async (session) => {
    await session.ensureTable()
    const applied = new Map((await session.applied()).map((m) => [m.name, m.checksum]))
    const done: string[] = []
    for (const file of files) {
      const previous = applied.get(file.name)
      if (previous !== undefined) {
        if (previous !== file.checksum) throw new MigrationChanged(file.name)
        continue
      }
      await session.apply(file.name, file.checksum, file.text)
      done.push(file.name)
    }
    return done
  })
}

/**
 * True when every file in `dir` is recorded as applied (readiness: an instance
 * started with MIGRATE_ON_START=false on an empty database must not say ready).
 * Once true it stays true for this process: migrations are only ever added.
 */
export function makeSchemaCheck(db: Kysely<any>, dir = SQL_DIR) {
  const expected = readMigrations(dir).map((m) => m.name)
  let current = false
  return async function schemaIsCurrent(): Promise<boolean> {
    if (current) return true
    // two queries: a statement naming a missing table fails at parse time, whatever its CASE
    const { rows: exists } = await sql<{ ok: boolean }>`
      select to_regclass('schema_migrations') is not null as ok`.execute(db)
    if (!exists[0]?.ok) return false
    const { rows } = await sql<{ name: string }>`select name from schema_migrations`.execute(db)
    const applied = new Set(rows.map((r) => r.name))
    current = expected.every((name) => applied.has(name))
    return current
  }
}
