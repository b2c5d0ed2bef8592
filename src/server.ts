import pkg from '../package.json'
import { ConfigError, loadConfig, type Config } from './config/config'
import { makeDatabase } from './db/database'
import { migrate } from './db/migrator'
import { createApp } from './http/app'
import { makeGuards } from './http/guards'
import { makeMemoryRateLimiter, makeRedisRateLimiter } from './http/rate-limit'
import { healthRoutes } from './http/health-routes'
import { metricsRoutes } from './http/metrics-routes'
import { makeLifecycle } from './lifecycle/lifecycle'
import { makeLogger, type Logger } from './obs/logger'
import { makeMetrics } from './obs/metrics'
import { connectRedis } from './redis/client'
import { makeRedisKeys } from './redis/keys'
import { makeActorSystem } from './actors/actor-system'
import { dispatchByType } from './actors/dispatch'
import { makeIdempotency } from './idempotency/idempotency'
import { ledgerHandler, makeCredits, type LedgerMessage } from './ledger/credits'
import type { LedgerResult } from './ledger/commands'
import { creditAdminRoutes, creditRoutes } from './ledger/routes'
import { readBalance } from './ledger/service'
import { makeLedgerWriter } from './ledger/writer'
import { adminStatsRoutes } from './stats/admin-routes'
import { userRoutes } from './users/routes'
import { makeUsers } from './users/service'
import { makeTokens } from './users/tokens'

/**
 * Composition root: config → dependencies → app → listen → signals.
 * buildInstance() is what tests use, so they run the same wiring as production.
 */
export async function buildInstance(config: Config, log: Logger) {
  const metrics = makeMetrics({ instance: config.instanceId })
  const lifecycle = makeLifecycle(log)
  const database = await makeDatabase({
    url: config.DATABASE_URL,
    dataDir: config.DATA_DIR,
    poolMax: config.DB_POOL_MAX,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
  })
  if (config.MIGRATE_ON_START) {
    const applied = await migrate(database.migrationTarget)
    if (applied.length > 0) log.info({ applied }, 'migrations applied')
  }
  const redis = config.REDIS_URL
    ? await connectRedis(config.REDIS_URL, (err) => log.error({ err }, 'redis error'))
    : undefined
  const keys = makeRedisKeys(config.REDIS_PREFIX)
  const limiter = redis ? makeRedisRateLimiter(redis, keys) : makeMemoryRateLimiter()

  const tokens = makeTokens({
    secret: config.jwtSecret,
    jwksUrl: config.JWKS_URL,
    ttlSeconds: config.JWT_TTL_SECONDS,
  })
  const guards = makeGuards(tokens)

  // the user actor: serializes every credit (and later generation) command of one user
  type UserMessage = LedgerMessage
  const userActors = makeActorSystem<UserMessage, LedgerResult>({
    name: 'user_actor',
    handle: dispatchByType<UserMessage, LedgerResult>({
      ledger: ledgerHandler(makeLedgerWriter(database.db)),
    }),
    log: log.child({ room: 'actors' }),
    metrics,
    mailboxCapacity: config.ACTOR_MAILBOX_CAPACITY,
    batchMax: config.ACTOR_BATCH_MAX,
    idleMs: config.ACTOR_IDLE_MS,
  })
  lifecycle.onDrain('actors', userActors.drain)
  const credits = makeCredits(userActors.ask)
  const idempotency = makeIdempotency(database.db, log.child({ room: 'idempotency' }))
  const signupCredits = config.SIGNUP_CREDITS

  const users = makeUsers(database.db, tokens, limiter, {
    // idempotent per user (key 'signup'), so login can make up for a registration cut short
    onRegistered:
      signupCredits > 0
        ? async (userId) =>
            void (await credits.apply(userId, {
              kind: 'grant',
              amount: signupCredits,
              reason: 'signup credits',
              key: 'signup',
            }))
        : undefined,
    adminEmails: config.adminEmails,
    loginRate: {
      perEmail: config.LOGIN_RATE_PER_EMAIL,
      perIp: config.LOGIN_RATE_PER_IP,
      windowSeconds: config.LOGIN_RATE_WINDOW_SECONDS,
    },
  })

  const checks: Record<string, () => Promise<void>> = { postgres: database.ping }
  if (redis) checks.redis = async () => void (await redis.ping())

  const ledgerDeps = {
    db: database.db,
    guards,
    credits,
    idempotency,
    webhookSecret: config.PAYMENT_WEBHOOK_SECRET,
  }
  const app = createApp({
    log,
    metrics,
    lifecycle,
    guards,
    version: pkg.version,
    maxBodyBytes: config.MAX_BODY_BYTES,
    routes: [
      healthRoutes({
        lifecycle,
        checks,
        instanceId: config.instanceId,
        region: config.region,
        version: pkg.version,
      }),
      metricsRoutes(metrics, config.METRICS_TOKEN),
      userRoutes({
        users,
        guards,
        trustProxy: config.TRUST_PROXY,
        balanceOf: (userId) => readBalance(database.db, userId),
      }),
      creditRoutes(ledgerDeps),
    ],
    adminRoutes: [
      creditAdminRoutes(ledgerDeps),
      adminStatsRoutes({
        db: database.db,
        instanceId: config.instanceId,
        region: config.region,
        sources: {
          inflightRequests: () => lifecycle.inflight,
          actorsLive: () => userActors.stats().live,
        },
      }),
    ],
  })

  async function close() {
    idempotency.close()
    await userActors.close()
    limiter.close()
    await redis?.quit().catch(() => {})
    await database.close()
  }

  return {
    config,
    log,
    app,
    lifecycle,
    database,
    redis,
    metrics,
    tokens,
    userActors,
    credits,
    idempotency,
    close,
  }
}

export type Instance = Awaited<ReturnType<typeof buildInstance>>

async function main() {
  let config: Config
  try {
    config = loadConfig()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`${error.message}\n`)
    process.exit(1)
  }
  const log = makeLogger({
    level: config.LOG_LEVEL,
    pretty: config.NODE_ENV === 'development' && process.stdout.isTTY === true,
    base: { instance: config.instanceId },
  })
  if (config.usingDevSecret)
    log.warn('JWT_SECRET is not set: using the development secret; never do this in production')
  if (config.mode === 'embedded')
    log.warn({ dataDir: config.DATA_DIR }, 'embedded mode: PGlite, in-memory events, one instance')

  const instance = await buildInstance(config, log)
  const server = instance.app.listen({
    port: config.PORT,
    hostname: config.HOST,
    // a backstop for bodies without Content-Length; the app refuses declared sizes first
    maxRequestBodySize: config.MAX_BODY_BYTES * 2,
  }).server!
  log.info({ url: `http://${server.hostname}:${server.port}`, mode: config.mode }, 'listening')

  let stopping = false
  const shutdown = async (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    log.info({ signal, budgetMs: config.DRAIN_TIMEOUT_MS }, 'draining')
    // stop(false) closes the listener and lets open requests finish; it is not
    // awaited because it can wait forever on open WebSockets (the sockets stage closes them)
    const clean = await instance.lifecycle.drain(
      config.DRAIN_TIMEOUT_MS,
      () => void server.stop(false),
    )
    await instance.close().catch((err) => log.error({ err }, 'closing pools failed'))
    server.stop(true)
    log.info({ clean }, 'drained')
    process.exit(clean ? 0 : 1)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

if (import.meta.main) await main()
