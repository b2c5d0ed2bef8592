import { loadConfig } from '../config/config'
import { toError } from '../errors'
import { makeLogger, type Logger } from '../obs/logger'
import { makeDatabase } from './database'
import { migrate } from './migrator'

/**
 * `bun run migrate`, and fly.toml's release_command: applies sql/ to the
 * configured database (Postgres, or PGlite when embedded) and exits 0, or
 * exits 1 with the reason. Safe beside booting instances: the migrator holds
 * the advisory lock, so each file is applied exactly once.
 */
async function main(): Promise<number> {
  let log: Logger = makeLogger({ level: 'info', pretty: false })
  try {
    const config = loadConfig()
    log = makeLogger({
      level: config.LOG_LEVEL,
      pretty: config.NODE_ENV === 'development' && process.stdout.isTTY === true,
      base: { instance: config.instanceId },
    })
    const database = await makeDatabase({
      url: config.DATABASE_URL,
      dataDir: config.DATA_DIR,
      poolMax: 2,
      statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    })
    try {
      const applied = await migrate(database.migrationTarget)
      log.info(
        { applied, database: database.kind },
        applied.length > 0 ? 'migrations applied' : 'schema is current',
      )
    } finally {
      await database.close()
    }
    return 0
  } catch (error) {
    const err = toError(error)
    log.error({ err, reason: err.message }, 'migration failed')
    return 1
  }
}

process.exit(await main())
