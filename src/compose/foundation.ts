import type { Config } from '../config/config'
import { makeDatabase } from '../db/database'
import { migrate } from '../db/migrator'
import { readSnapshot } from '../db/pglite-snapshot'
import { makeReadDatabase } from '../db/read-database'
import { makeLifecycle } from '../lifecycle/lifecycle'
import type { Logger } from '../obs/logger'
import { makeMetrics } from '../obs/metrics'
import { connectRedis } from '../redis/client'
import { makeRedisKeys } from '../redis/keys'
import { DRAIN_ORDER } from './drain-order'

/**
 * What every room is built on: metrics, the lifecycle (drain stages and
 * closers), the primary database (migrated here when MIGRATE_ON_START), the
 * read database, and Redis when REDIS_URL is set. Closers registered here
 * run last: everything made later uses these.
 */
export type Foundation = Awaited<ReturnType<typeof composeFoundation>>

export async function composeFoundation(config: Config, log: Logger) {
  const metrics = makeMetrics({ instance: config.instanceId })
  const lifecycle = makeLifecycle(log, { drainOrder: DRAIN_ORDER })
  const databaseOptions = {
    url: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolMax: config.DB_POOL_MAX,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    lockTimeoutMs: config.DB_LOCK_TIMEOUT_MS,
    idleInTransactionMs: config.DB_IDLE_IN_TRANSACTION_TIMEOUT_MS,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    applicationName: `atelier:${config.instanceId}`.slice(0, 63),
    onError: (err: Error) => log.warn({ err }, 'postgres connection lost'),
    // embedded: a new DATA_DIR starts from the migrated snapshot when bun install built one
    snapshot: () => readSnapshot(),
  }
  const database = await makeDatabase(databaseOptions)
  lifecycle.onClose('database', database.close)
  if (database.booted === 'snapshot') log.info('new embedded database from the migrated snapshot')
  // a read region (Fly.io) never writes, not even the schema: the primary's machines migrate
  if (config.MIGRATE_ON_START && config.isPrimaryRegion) {
    const applied = await migrate(database.migrationTarget)
    if (applied.length > 0) log.info({ applied }, 'migrations applied')
  }
  // DATABASE_READ_URL: the replica (server mode only), or the primary's database when there is none
  const readDatabase = await makeReadDatabase(config.DATABASE_READ_URL, databaseOptions)
  if (readDatabase) lifecycle.onClose('read database', readDatabase.close)
  const readDb = readDatabase?.db ?? database.db
  // a user's own generations and media: the replica only outside the primary region, where
  // read-your-writes already replays a writer's reads to the primary (in it, reads follow writes)
  const regionReadDb = config.isPrimaryRegion ? database.db : readDb
  const redis = config.REDIS_URL
    ? await connectRedis(config.REDIS_URL, (err) => log.error({ err }, 'redis error'), {
        commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
        queueMax: config.REDIS_QUEUE_MAX,
      })
    : undefined
  if (redis) lifecycle.onClose('redis', () => redis.quit().catch(() => {}))
  const keys = makeRedisKeys(config.REDIS_PREFIX)
  return { metrics, lifecycle, database, readDatabase, readDb, regionReadDb, redis, keys }
}
