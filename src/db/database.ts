import { PGlite } from '@electric-sql/pglite'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { Kysely, PostgresDialect, sql } from 'kysely'
import { existsSync, mkdirSync } from 'node:fs'
import pg from 'pg'
import { withDeadline } from './deadline'
import type { MigrationTarget } from './migrator'
import { makePGlitePool } from './pglite-pool'
import type { DB } from './schema'

export type Database = {
  kind: 'postgres' | 'pglite'
  /**
   * PGlite only: how its directory came to be. 'snapshot': a new directory
   * unpacked from the migrated snapshot (pglite-snapshot.ts) instead of initdb.
   */
  booted?: 'existing' | 'initdb' | 'snapshot'
  db: Kysely<DB>
  migrationTarget: MigrationTarget
  /** One round trip; throws when the database does not answer. */
  ping(): Promise<void>
  close(): Promise<void>
}

export type DatabaseDeps = {
  /** postgres:// URL; when absent, PGlite stored in `dataDir` (embedded mode). */
  url?: string
  dataDir: string
  poolMax: number
  statementTimeoutMs: number
  /** Longest wait for a row lock before the statement fails with 55P03 (default 5 000 ms). */
  lockTimeoutMs?: number
  /** A session idle inside a transaction this long is ended by Postgres (default 5 000 ms). */
  idleInTransactionMs?: number
  /** Longest wait for a connection, new or from the pool (default 3 000 ms). */
  connectTimeoutMs?: number
  /** Client-side deadline of one call (default statement timeout + 2 000 ms). */
  callDeadlineMs?: number
  /**
   * Longest time spent settling an actor batch's COMMIT whose answer was lost
   * (src/db/deadline.ts; default 10 000 ms).
   */
  settleMs?: number
  /** Shown in pg_stat_activity (default 'atelier'). */
  applicationName?: string
  /** Errors of connections that died while idle or between queries (they fail no call). */
  onError?: (error: Error) => void
  /**
   * PGlite only: a migrated data directory (a tar, pglite-snapshot.ts) that a
   * new DATA_DIR starts from instead of running initdb and every migration.
   */
  snapshot?: () => Blob | undefined
}

function resolveDeadlines(deps: DatabaseDeps) {
  return {
    statementTimeoutMs: deps.statementTimeoutMs,
    lockTimeoutMs: deps.lockTimeoutMs ?? 5000,
    idleInTransactionMs: deps.idleInTransactionMs ?? 5000,
    connectTimeoutMs: deps.connectTimeoutMs ?? 3000,
    callDeadlineMs: deps.callDeadlineMs ?? deps.statementTimeoutMs + 2000,
  }
}

const INT8 = 20

function parserOf(oid: number, format?: 'text' | 'binary') {
  return oid === INT8 && format !== 'binary'
    ? Number
    : pg.types.getTypeParser(oid, format as 'text')
}

/** Extensions the migrations need, from PGlite's bundle: library search runs the same SQL as on Postgres. */
export const PGLITE_EXTENSIONS = { pg_trgm }

export async function makeDatabase(deps: DatabaseDeps): Promise<Database> {
  if (!deps.url) return makePGlite(deps.dataDir, deps.snapshot)
  const database = makePostgres(deps.url, deps)
  // connect now: a bad DATABASE_URL fails the start, and kysely's driver is
  // initialized, so after close() a stray query rejects instead of waiting forever
  await database.ping().catch(async (error) => {
    await database.close().catch(() => {})
    throw error
  })
  return database
}

function makePostgres(url: string, deps: DatabaseDeps): Database {
  const deadlines = resolveDeadlines(deps)
  const pool = new pg.Pool({
    connectionString: url,
    max: deps.poolMax,
    application_name: deps.applicationName ?? 'atelier',
    // server-side bounds: a statement, a lock wait, a transaction left open by a frozen instance
    statement_timeout: deadlines.statementTimeoutMs,
    lock_timeout: deadlines.lockTimeoutMs,
    idle_in_transaction_session_timeout: deadlines.idleInTransactionMs,
    // bounds both a new connection and the wait for a free one in the pool
    connectionTimeoutMillis: deadlines.connectTimeoutMs,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    // counts and balances are bigint in SQL and below 2^53 in practice: numbers in TypeScript
    types: { getTypeParser: parserOf as typeof pg.types.getTypeParser },
  })
  // node-postgres emits a dead connection's error as an event; with no listener it kills the
  // process (brianc/node-postgres#1324). The pool's listener covers idle clients only, so every
  // client also gets its own for the time it is checked out (#2762).
  const onError = deps.onError ?? (() => {})
  pool.on('error', (err) => onError(err))
  pool.on('connect', (client) => client.on('error', (err) => onError(err)))
  const db = new Kysely<DB>({
    dialect: new PostgresDialect({
      pool: withDeadline(pool, {
        callDeadlineMs: deadlines.callDeadlineMs,
        settleMs: deps.settleMs,
      }),
    }),
  })
  return {
    kind: 'postgres',
    db,
    migrationTarget: {
      async withLock(run) {
        const conn = await pool.connect()
        let broken: unknown
        try {
          // the advisory lock waits for another instance's migration: not a lock_timeout case
          await conn.query('set lock_timeout = 0')
          await conn.query('select pg_advisory_lock($1)', [MIGRATION_LOCK])
          return await run({
            applied: async () =>
              (await conn.query('select name, checksum from schema_migrations order by name'))
                .rows as never,
            ensureTable: async () => {
              await conn.query(CREATE_MIGRATIONS_TABLE)
            },
            // one simple-protocol message (no parameters): Postgres runs it as one implicit transaction
            apply: async (name, checksum, text) => {
              await conn.query(`${text}\n;${recordMigration(name, checksum)}`)
            },
          })
        } catch (error) {
          broken = error
          throw error
        } finally {
          await conn.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => {})
          // the session's lock_timeout was changed: this connection is not returned to the pool
          conn.release(broken instanceof Error ? broken : true)
        }
      },
    },
    ping: async () => {
      await sql`select 1`.execute(db)
    },
    // kysely skips its driver's destroy when it never ran a query, so the pool is ended
    // here too: a closed Database must refuse work instead of opening a fresh pool
    close: async () => {
      await db.destroy()
      if (!pool.ended) await pool.end()
    },
  }
}

async function makePGlite(dataDir: string, snapshot?: () => Blob | undefined): Promise<Database> {
  const dir = `${dataDir}/pglite`
  let booted: Database['booted'] = 'existing'
  let loadDataDir: Blob | undefined
  if (!existsSync(`${dir}/PG_VERSION`)) {
    mkdirSync(dataDir, { recursive: true })
    loadDataDir = snapshot?.()
    booted = loadDataDir ? 'snapshot' : 'initdb'
  }
  return pgliteDatabase(
    await PGlite.create(dir, {
      parsers: { [INT8]: Number },
      extensions: PGLITE_EXTENSIONS,
      loadDataDir,
    }),
    booted,
  )
}

/** PGlite in memory (nothing on disk): what the snapshot is built in. */
export async function makeMemoryPGlite(): Promise<Database & { dump(): Promise<Blob> }> {
  const pg = await PGlite.create({ parsers: { [INT8]: Number }, extensions: PGLITE_EXTENSIONS })
  // 'none': an uncompressed tar, which unpacks faster than it would inflate
  return { ...pgliteDatabase(pg, 'initdb'), dump: () => pg.dumpDataDir('none') }
}

function pgliteDatabase(pg: PGlite, booted: Database['booted']): Database {
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool: makePGlitePool(pg) }) })
  return {
    kind: 'pglite',
    booted,
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
