import { PGlite } from '@electric-sql/pglite'
import { Kysely, PostgresDialect, sql } from 'kysely'
import { PostgresJSDialect } from 'kysely-postgres-js'
import { mkdirSync } from 'node:fs'
import postgres from 'postgres'
import type { MigrationTarget } from './migrator'
import { makePGlitePool } from './pglite-pool'
import type { DB } from './schema'

export type Database = {
  kind: 'postgres' | 'pglite'
  db: Kysely<DB>
  migrationTarget: MigrationTarget
  /** One round trip; throws when the database does not answer. */
  ping(): Promise<void>
  close(): Promise<void>
}

export type DatabaseOptions = {
  /** postgres:// URL; when absent, PGlite stored in `dataDir` (embedded mode). */
  url?: string
  dataDir: string
  poolMax: number
  statementTimeoutMs: number
}

const INT8 = 20

export async function makeDatabase(options: DatabaseOptions): Promise<Database> {
  if (!options.url) return makePGlite(options.dataDir)
  const database = makePostgres(options.url, options)
  // connect now: a bad DATABASE_URL fails the start, and kysely's driver is
  // initialized, so after close() a stray query rejects instead of waiting forever
  await database.ping().catch(async (error) => {
    await database.close().catch(() => {})
    throw error
  })
  return database
}

function makePostgres(url: string, options: DatabaseOptions): Database {
  const client = postgres(url, {
    max: options.poolMax,
    connection: { statement_timeout: options.statementTimeoutMs, application_name: 'atelier' },
    onnotice: () => {},
    // counts and balances are bigint in SQL and below 2^53 in practice: numbers in TypeScript
    types: {
      int8: { to: INT8, from: [INT8], serialize: (x: number) => String(x), parse: Number },
    },
  })
  const db = new Kysely<DB>({ dialect: new PostgresJSDialect({ postgres: client }) })
  return {
    kind: 'postgres',
    db,
    migrationTarget: {
      async withLock(run) {
        const conn = await client.reserve()
        try {
          await conn`select pg_advisory_lock(${MIGRATION_LOCK})`
          return await run({
            applied: async () =>
              (await conn`select name, checksum from schema_migrations order by name`) as never,
            ensureTable: async () => {
              await conn.unsafe(CREATE_MIGRATIONS_TABLE)
            },
            // one simple-protocol message: Postgres runs it as one implicit transaction
            apply: async (name, checksum, text) => {
              await conn.unsafe(`${text}\n;${recordMigration(name, checksum)}`).simple()
            },
          })
        } finally {
          await conn`select pg_advisory_unlock(${MIGRATION_LOCK})`.catch(() => {})
          conn.release()
        }
      },
    },
    ping: async () => {
      await sql`select 1`.execute(db)
    },
    // kysely skips its driver's destroy when it never ran a query, so the client is ended
    // here too: a closed Database must refuse work instead of opening a fresh pool
    close: async () => {
      await db.destroy()
      await client.end()
    },
  }
}

async function makePGlite(dataDir: string): Promise<Database> {
  mkdirSync(dataDir, { recursive: true })
  const pg = await PGlite.create(`${dataDir}/pglite`, { parsers: { [INT8]: Number } })
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: makePGlitePool(pg) }) })
  return {
    kind: 'pglite',
    db,
    migrationTarget: {
      // one process owns a PGlite directory, so the lock is this process's turn on it
      async withLock(run) {
        return run({
          applied: async () =>
            (await pg.query(`select name, checksum from schema_migrations order by name`))
              .rows as never,
          ensureTable: async () => {
            await pg.exec(CREATE_MIGRATIONS_TABLE)
          },
          apply: async (name, checksum, text) => {
            await pg.transaction(async (tx) => {
              await tx.exec(text)
              await tx.exec(recordMigration(name, checksum))
            })
          },
        })
      },
    },
    ping: async () => {
      await pg.query('select 1')
    },
    close: async () => {
      await db.destroy()
      await pg.close()
    },
  }
}

/** An arbitrary constant shared by every instance: the migration advisory lock. */
const MIGRATION_LOCK = 7_203_514_001

const CREATE_MIGRATIONS_TABLE = `create table if not exists schema_migrations (
  name text primary key,
  checksum text not null,
  applied_at timestamptz not null default now()
)`

// name and checksum come from the migrator (file name pattern and hex digest), never from users
function recordMigration(name: string, checksum: string) {
  return `insert into schema_migrations (name, checksum) values ('${name}', '${checksum}')`
}
