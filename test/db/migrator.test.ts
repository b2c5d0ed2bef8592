import { afterAll, describe, expect, it } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { makeDatabase, type Database } from '../../src/db/database'
import { MigrationChanged, migrate, readMigrations } from '../../src/db/migrator'
import { useTestEnv } from '../support/env'

// PGlite boots and child processes take seconds; `bun test` alone gives a test 5 s
const SLOW_MS = 30_000

const env = await useTestEnv()
// our own admin session: the fresh databases are dropped before it ends, whatever the hook order
const admin = postgres(env.services.postgresUrl, { max: 2, onnotice: () => {} })
const cleanups: (() => Promise<unknown> | unknown)[] = []

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
  await admin.end()
})

/** An empty database (not this file's migrated clone): migrations start from nothing. */
async function freshDatabase() {
  const name = `atelier_m_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  await admin.unsafe(`create database "${name}"`)
  cleanups.push(() => admin.unsafe(`drop database if exists "${name}" with (force)`))
  const url = new URL(env.services.postgresUrl)
  url.pathname = `/${name}`
  return { url: url.toString(), name }
}

/** True when a session in database `name` waits for a lock of this type. */
async function waiting(name: string, locktype: 'relation' | 'advisory') {
  const rows = await admin`select 1 from pg_locks l join pg_database d on d.oid = l.database
    where d.datname = ${name} and l.locktype = ${locktype} and not l.granted`
  return rows.length > 0
}

async function open(url: string | undefined, dataDir = ''): Promise<Database> {
  const database = await makeDatabase({ url, dataDir, poolMax: 2, statementTimeoutMs: 30_000 })
  cleanups.push(() => database.close())
  return database
}

function sqlDir(files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'atelier-sql-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return dir
}

/** Polls until `check` holds, each round awaiting a query; gives up after `ms`. */
async function eventually(check: () => Promise<boolean>, what: string, ms = 10_000) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) if (await check()) return
  throw new Error(`never happened within ${ms} ms: ${what}`)
}

describe('migrations on Postgres', () => {
  it(
    'applies each file exactly once when two migrators run at once',
    async () => {
      const { url, name } = await freshDatabase()
      // `gate` lets the test hold the first migrator inside its first file until the second
      // migrator is provably waiting for the migration lock
      const holder = postgres(url, { max: 1, onnotice: () => {} })
      cleanups.push(() => holder.end())
      await holder`create table gate (step int not null)`
      const dir = sqlDir({
        '0001_first.sql': 'insert into gate values (1);\ncreate table things (id int primary key);',
        '0002_second.sql': 'insert into gate values (2);\ninsert into things values (1);',
      })
      const [a, b] = [await open(url), await open(url)]

      let first!: Promise<string[]>
      let second!: Promise<string[]>
      await holder.begin(async (tx) => {
        await tx`lock table gate in access exclusive mode`
        first = migrate(a.migrationTarget, dir)
        await eventually(() => waiting(name, 'relation'), 'the first migrator to block on the gate')
        second = migrate(b.migrationTarget, dir)
        await eventually(
          () => waiting(name, 'advisory'),
          'the second migrator to wait for the migration lock',
        )
      })

      const results = await Promise.all([first, second])
      expect(results.flat().sort()).toEqual(['0001_first.sql', '0002_second.sql'])
      expect(results[0]).toEqual(['0001_first.sql', '0002_second.sql'])
      expect(results[1]).toEqual([])
      expect([...(await holder`select step from gate order by step`)]).toEqual([
        { step: 1 },
        { step: 2 },
      ])
      expect([...(await holder`select name from schema_migrations order by name`)]).toEqual([
        { name: '0001_first.sql' },
        { name: '0002_second.sql' },
      ])
    },
    SLOW_MS,
  )

  it('rolls back a failing file whole and applies nothing after it', async () => {
    const { url } = await freshDatabase()
    const dir = sqlDir({
      '0001_ok.sql': 'create table a (id int);',
      '0002_broken.sql': 'create table b (id int);\nselect no_such_function();',
      '0003_later.sql': 'create table c (id int);',
    })
    const database = await open(url)
    await expect(migrate(database.migrationTarget, dir)).rejects.toThrow(/no_such_function/)
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    cleanups.push(() => sql.end())
    const tables = await sql`select table_name from information_schema.tables
      where table_schema = 'public' order by table_name`
    expect(tables.map((t) => t.table_name)).toEqual(['a', 'schema_migrations'])
  })

  it('refuses to run when an applied file was edited, naming the file', async () => {
    const { url } = await freshDatabase()
    const dir = sqlDir({
      '0001_users.sql': 'create table people (id int);',
      '0002_posts.sql': 'create table posts (id int);',
    })
    const database = await open(url)
    expect(await migrate(database.migrationTarget, dir)).toEqual([
      '0001_users.sql',
      '0002_posts.sql',
    ])
    writeFileSync(join(dir, '0001_users.sql'), 'create table people (id bigint);')
    writeFileSync(join(dir, '0003_tags.sql'), 'create table tags (id int);')
    const failure = await migrate(database.migrationTarget, dir).catch((e: unknown) => e)
    expect(failure).toBeInstanceOf(MigrationChanged)
    expect((failure as MigrationChanged).file).toBe('0001_users.sql')
    expect((failure as Error).message).toContain('append-only')
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    cleanups.push(() => sql.end())
    expect((await sql`select to_regclass('tags') as t`)[0]!.t).toBeNull()
  })

  it('applies nothing the second time and ignores files that are not migrations', async () => {
    const { url } = await freshDatabase()
    const dir = sqlDir({ '0001_a.sql': 'create table a (id int);', 'README.txt': 'not sql' })
    const database = await open(url)
    expect(await migrate(database.migrationTarget, dir)).toEqual(['0001_a.sql'])
    expect(await migrate(database.migrationTarget, dir)).toEqual([])
  })
})

describe('migrations on PGlite (embedded)', () => {
  it(
    'applies the real sql/ files once, keeps them across restarts, and refuses an edit',
    async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'atelier-pglite-'))
      cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
      const names = readMigrations().map((m) => m.name)
      expect(names.length).toBeGreaterThan(0)

      const first = await makeDatabase({ dataDir, poolMax: 1, statementTimeoutMs: 30_000 })
      expect(first.kind).toBe('pglite')
      expect(await migrate(first.migrationTarget)).toEqual(names)
      expect(await migrate(first.migrationTarget)).toEqual([])
      const users = await first.db.selectFrom('users').select('id').execute()
      expect(users).toEqual([])
      await first.close()

      const again = await open(undefined, dataDir)
      expect(await migrate(again.migrationTarget)).toEqual([])

      const dir = sqlDir({ '0001_users.sql': 'create table something_else (id int);' })
      await expect(migrate(again.migrationTarget, dir)).rejects.toBeInstanceOf(MigrationChanged)
    },
    SLOW_MS,
  )
})

describe('bun run migrate', () => {
  const cli = (env: Record<string, string>) =>
    Bun.spawn([process.execPath, 'src/db/migrate-cli.ts'], {
      cwd: join(import.meta.dir, '..', '..'),
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', ...env },
      stdout: 'pipe',
      stderr: 'pipe',
    })

  it(
    'applies sql/ to DATABASE_URL, logs the names, and exits 0',
    async () => {
      const { url } = await freshDatabase()
      const run = cli({ DATABASE_URL: url })
      expect(await run.exited).toBe(0)
      const lines = (await new Response(run.stdout).text())
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
      expect(lines.at(-1)).toMatchObject({
        msg: 'migrations applied',
        applied: readMigrations().map((m) => m.name),
      })
      const again = cli({ DATABASE_URL: url })
      expect(await again.exited).toBe(0)
      expect(await new Response(again.stdout).text()).toContain('schema is current')
    },
    SLOW_MS,
  )

  it(
    'exits 1 with the reason when the configuration is refused',
    async () => {
      const run = cli({ PORT: 'abc' })
      expect(await run.exited).toBe(1)
      const out = await new Response(run.stdout).text()
      expect(out).toContain('migration failed')
      expect(out).toContain('PORT: Expected integer')
    },
    SLOW_MS,
  )
})
