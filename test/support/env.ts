import { afterAll } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { createClient } from 'redis'
import { loadConfig, type Config } from '../../src/config/config'
import { makeDatabase } from '../../src/db/database'
import { migrate, readMigrations } from '../../src/db/migrator'
import { makeLogger } from '../../src/obs/logger'
import { buildInstance, type Instance, type InstanceOverrides } from '../../src/server'
import { getServices, stopContainers } from './services'

/**
 * One test file's world: its own database cloned from a migrated template
 * (CREATE DATABASE … TEMPLATE: a file copy, ~50 ms) and its own Redis key
 * prefix; both are dropped in afterAll, with every instance the file built.
 */
export type TestEnv = Awaited<ReturnType<typeof useTestEnv>>

const TEMPLATE_LOCK = 7_203_514_002
let template: Promise<string> | undefined

function templateName() {
  const digest = new Bun.CryptoHasher('sha256')
  for (const m of readMigrations()) digest.update(m.name).update(m.checksum)
  return `atelier_tpl_${digest.digest('hex').slice(0, 12)}`
}

function withDatabase(url: string, name: string) {
  const u = new URL(url)
  u.pathname = `/${name}`
  return u.toString()
}

async function ensureTemplate(adminUrl: string): Promise<string> {
  const name = templateName()
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  try {
    await admin`select pg_advisory_lock(${TEMPLATE_LOCK})`
    const [exists] = await admin`select 1 from pg_database where datname = ${name}`
    if (!exists) {
      // built under a temporary name and renamed when complete: a failed
      // migration never leaves a half-migrated template behind
      const building = `${name}_building`
      await admin.unsafe(`drop database if exists "${building}" with (force)`)
      await admin.unsafe(`create database "${building}"`)
      const db = await makeDatabase({
        url: withDatabase(adminUrl, building),
        dataDir: '',
        poolMax: 2,
        statementTimeoutMs: 60_000,
      })
      try {
        await migrate(db.migrationTarget)
      } finally {
        await db.close()
      }
      // a closed pool's backends may linger a moment; a template must have no sessions
      await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${building}`
      await admin.unsafe(`alter database "${building}" rename to "${name}"`)
    }
    await admin`select pg_advisory_unlock(${TEMPLATE_LOCK})`
  } finally {
    await admin.end()
  }
  return name
}

export const silentLog = makeLogger({
  level: process.env.TEST_LOG_LEVEL ?? 'silent',
  pretty: false,
})

export async function useTestEnv() {
  const services = await getServices()
  template ??= ensureTemplate(services.postgresUrl)
  const tpl = await template
  const id = crypto.randomUUID().replaceAll('-', '').slice(0, 12)
  const dbName = `atelier_t_${id}`
  const admin = postgres(services.postgresUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database "${dbName}" template "${tpl}"`)
  const databaseUrl = withDatabase(services.postgresUrl, dbName)
  /** Direct SQL on this file's database, for setting up and inspecting state. */
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} })
  const redisPrefix = `atelier-test:${id}:`
  const instances: Instance[] = []
  const dataDir = mkdtempSync(join(tmpdir(), 'atelier-test-'))

  /** A config as production would read it, pointed at this file's database and prefix. */
  function config(overrides: Record<string, string | undefined> = {}): Config {
    return loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: databaseUrl,
      REDIS_URL: services.redisUrl,
      REDIS_PREFIX: redisPrefix,
      JWT_SECRET: 'test-secret-that-is-long-enough-0123456789',
      DATA_DIR: dataDir,
      DB_POOL_MAX: '8',
      MIGRATE_ON_START: 'false',
      ...overrides,
    })
  }

  async function instance(
    variables: Record<string, string | undefined> = {},
    overrides: InstanceOverrides = {},
  ) {
    const inst = await buildInstance(config(variables), silentLog, overrides)
    instances.push(inst)
    return inst
  }

  const databases: { close(): Promise<void> }[] = []
  /** The app's own database client on this file's database (no instance around it). */
  async function database(poolMax = 6) {
    const d = await makeDatabase({
      url: databaseUrl,
      dataDir: '',
      poolMax,
      statementTimeoutMs: 10_000,
    })
    databases.push(d)
    return d
  }

  afterAll(async () => {
    await Promise.all(instances.map((i) => i.close().catch(() => {})))
    await Promise.all(databases.map((d) => d.close().catch(() => {})))
    await sql.end()
    await admin.unsafe(`drop database if exists "${dbName}" with (force)`)
    await admin.end()
    const redis = createClient({ url: services.redisUrl })
    await redis.connect()
    for await (const keys of redis.scanIterator({ MATCH: `${redisPrefix}*`, COUNT: 500 }))
      if (keys.length) await redis.del(keys)
    await redis.quit()
    rmSync(dataDir, { recursive: true, force: true })
    await stopContainers()
  })

  return {
    services,
    databaseUrl,
    dbName,
    redisPrefix,
    dataDir,
    config,
    instance,
    database,
    admin,
    sql,
  }
}
