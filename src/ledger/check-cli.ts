import { loadConfig } from '../config/config'
import { makeDatabase } from '../db/database'
import { makeLogger } from '../obs/logger'
import { checkLedger } from './service'

/** `bun run ledger:check`: reconciles every account; exits 1 when any mismatch is found. */
const config = loadConfig()
const log = makeLogger({ level: config.LOG_LEVEL, pretty: false })
const database = await makeDatabase({
  url: config.DATABASE_URL,
  dataDir: config.DATA_DIR,
  poolMax: 2,
  statementTimeoutMs: 600_000,
})
try {
  const result = await checkLedger(database.db)
  if (result.ok) log.info({ accounts: result.accounts }, 'ledger check passed')
  else
    log.error({ accounts: result.accounts, mismatches: result.mismatches }, 'ledger check failed')
  process.exitCode = result.ok ? 0 : 1
} finally {
  await database.close()
}
