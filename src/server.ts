import { ConfigError, loadConfig, type Config } from './config/config'
import { composeUserActors } from './compose/actors'
import { answerWithinSeconds } from './http/answer-within'
import { composeLibrary, composeMedia } from './compose/content'
import { composeEvents } from './compose/events'
import { composeFoundation } from './compose/foundation'
import { composeGeneration } from './compose/generation'
import { composeApp } from './compose/http'
import { composeIdempotency } from './compose/idempotency'
import { composeHeartbeat } from './compose/operations'
import { composeGateway, type RealtimeOverrides } from './compose/realtime'
import { composeUsers, type UsersOverrides } from './compose/users'
import { BUN_MAX_REQUEST_BODY } from './http/body'
import { installProcessHandlers } from './lifecycle/process-handlers'
import { makeShutdown } from './lifecycle/shutdown'
import { makeLogger, type Logger } from './obs/logger'
import { logListening, logStartupWarnings } from './obs/startup'

/**
 * Composition root: config → dependencies → app → listen → signals.
 * buildInstance() is what tests use, so they run the same wiring as production.
 * Each room is made by its compose function (src/compose/), after what it
 * uses; each registers its own drain stage (in DRAIN_ORDER's place) and its
 * closer, so the instance closes in the reverse of the order it was made.
 */
export type InstanceOverrides = RealtimeOverrides & UsersOverrides

export async function buildInstance(
  config: Config,
  log: Logger,
  overrides: InstanceOverrides = {},
) {
  const f = await composeFoundation(config, log)
  const media = composeMedia(f, config, log)
  const { poseCache, invalidation, library } = await composeLibrary(f, config, log)
  const { events, relay, outbox } = await composeEvents(f, config, log)
  const idempotency = composeIdempotency(f, config, log)
  const { userActors, askGeneration, credits } = await composeUserActors(f, config, log, {
    outbox,
    urls: media.urls,
    idempotency,
  })
  const users = composeUsers(f, config, log, overrides, credits, idempotency)
  const gateway = composeGateway(f, config, log, overrides, {
    events,
    principals: users.principals,
  })
  const { pool, sweeper, generations } = composeGeneration(f, config, log, {
    media,
    library,
    askGeneration,
  })
  const heartbeat = await composeHeartbeat(f, config, log, {
    actors: userActors.stats,
    websocketConnections: gateway.connections,
  })
  const app = composeApp(f, config, log, {
    users,
    media,
    library,
    credits,
    generations,
    idempotency,
    gateway,
    heartbeat,
    actors: userActors,
  })
  return {
    config,
    log,
    app,
    lifecycle: f.lifecycle,
    database: f.database,
    readDb: f.readDb,
    library,
    poseCache,
    libraryInvalidation: invalidation,
    redis: f.redis,
    metrics: f.metrics,
    tokens: users.tokens,
    guards: users.guards,
    principals: users.principals,
    userActors,
    credits,
    generations,
    pool,
    sweeper,
    media: media.storage,
    mediaUrls: media.urls,
    idempotency,
    uploads: media.uploads,
    events,
    relay,
    gateway,
    close: f.lifecycle.close,
  }
}

export type Instance = Awaited<ReturnType<typeof buildInstance>>

/** Bun.serve's options for the listener (tests listen with them on port 0). */
export function serveOptions(config: Config) {
  return {
    port: config.PORT,
    hostname: config.HOST,
    // far above every route's limit: the app answers every over-limit body itself (http/body.ts)
    maxRequestBodySize: BUN_MAX_REQUEST_BODY,
    idleTimeout: answerWithinSeconds(config),
  }
}

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
  logStartupWarnings(log, config)
  const instance = await buildInstance(config, log)
  const server = instance.app.listen(serveOptions(config)).server!
  logListening(log, config, server)
  const shutdown = makeShutdown({
    log,
    lifecycle: instance.lifecycle,
    budgetMs: config.DRAIN_TIMEOUT_MS,
    readyGraceMs: config.DRAIN_READY_GRACE_MS,
    close: instance.close,
    server,
    exit: (code) => process.exit(code),
  })
  installProcessHandlers({
    log,
    metrics: instance.metrics,
    fatal: (reason, code) => void shutdown(reason, code),
  })
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

if (import.meta.main) await main()
