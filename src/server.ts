import pkg from '../package.json'
import { ConfigError, loadConfig, type Config } from './config/config'
import { makeDatabase } from './db/database'
import { makeSchemaCheck, migrate } from './db/migrator'
import { makeReadDatabase } from './db/read-database'
import { installProcessHandlers } from './lifecycle/process-handlers'
import { createApp } from './http/app'
import { BUN_MAX_REQUEST_BODY } from './http/body'
import { makeGuards } from './http/guards'
import { makeFallbackRateLimiter, makeMemoryRateLimiter } from './users/rate-limit'
import { healthRoutes } from './http/health-routes'
import { metricsRoutes } from './http/metrics-routes'
import { makeRegionEdge } from './http/region'
import { Unavailable } from './errors'
import { makeLifecycle } from './lifecycle/lifecycle'
import { makeLogger, type Logger } from './obs/logger'
import { makeMetrics } from './obs/metrics'
import { connectRedis, withDeadline } from './redis/client'
import { makeRedisKeys } from './redis/keys'
import { makeCluster } from './actors/cluster'
import { actorAdminRoutes } from './actors/routes'
import { taggedWire } from './actors/wire'
import { dispatchByType } from './actors/dispatch'
import { ledgerWire } from './ledger/wire'
import { generationWire } from './generation/wire'
import { makeIdempotency } from './idempotency/idempotency'
import { ledgerHandler, makeCredits, type LedgerMessage } from './ledger/credits'
import type { LedgerResult } from './ledger/commands'
import { creditAdminRoutes, creditRoutes } from './ledger/routes'
import { applyLedgerBatch, readBalance } from './ledger/service'
import { makeLedgerWriter } from './ledger/writer'
import { ledgerKeys } from './ledger/keys'
import { makeHeartbeat } from './stats/heartbeat'
import { adminStatsRoutes, statsRoutes } from './stats/routes'
import { makeStats } from './stats/service'
import {
  generationHandler,
  type GenerationCommand,
  type GenerationMessage,
  type GenerationResult,
} from './generation/commands'
import { makeRendererPool } from './generation/queue/pool'
import { makeProducer } from './generation/produce'
import { makeHttpRenderer } from './generation/renderers/http'
import { makeLocalRenderer } from './generation/renderers/local'
import { generationRoutes, queueAdminRoutes } from './generation/routes'
import { makeGenerations } from './generation/service'
import { makeSweeper } from './generation/queue/sweeper'
import { fenceAccount, lockAccount } from './ledger/repository'
import { makePoseCache } from './library/cache'
import { makeLibraryInvalidation } from './library/invalidation'
import { libraryAdminRoutes, libraryRoutes } from './library/routes'
import { makeLibrary } from './library/service'
import { mediaRoutes } from './media/routes'
import { makeUploadMetrics } from './media/upload-metrics'
import { uploadRoutes } from './media/upload-routes'
import { makeUploads } from './media/uploads'
import { makeMediaUrls } from './media/signed-urls'
import { makeMediaStorage } from './media/storage-factory'
import { userRoutes } from './users/routes'
import { makeUsers } from './users/service'
import { makeAuthenticator } from './users/principals'
import { makeTokens } from './users/tokens'
// realtime: event log + WebSocket gateway
import { makeEventLog } from './events/event-log'
import { lastEventId, writeEvents, type Outbox } from './events/outbox'
import { makeOutboxRelay } from './events/outbox-relay'
import { makeGateway } from './realtime/gateway'
import { realtimeRoutes } from './realtime/routes'
import { webRoutes } from './web/routes'

/**
 * Composition root: config → dependencies → app → listen → signals.
 * buildInstance() is what tests use, so they run the same wiring as production.
 */
export type InstanceOptions = {
  /** Time a socket has for its auth message (default 5000 ms, API.md); tests shorten it. */
  authTimeoutMs?: number
  /** The clock token expiries are checked and timed by (default Date.now); tests move it. */
  now?: () => number
  /** How long a resolved user record is trusted (default 30,000 ms). */
  userCacheTtlMs?: number
  /** Resolved user records kept (default 10,000). */
  userCacheMax?: number
}

export async function buildInstance(config: Config, log: Logger, options: InstanceOptions = {}) {
  const metrics = makeMetrics({ instance: config.instanceId })
  const lifecycle = makeLifecycle(log)
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
  }
  const database = await makeDatabase(databaseOptions)
  // a read region (Fly.io) never writes, not even the schema: the primary's machines migrate
  if (config.MIGRATE_ON_START && config.isPrimaryRegion) {
    const applied = await migrate(database.migrationTarget)
    if (applied.length > 0) log.info({ applied }, 'migrations applied')
  }
  // DATABASE_READ_URL: the replica (server mode only), or the primary's database when there is none
  const readDatabase = await makeReadDatabase(config.DATABASE_READ_URL, databaseOptions)
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
  const keys = makeRedisKeys(config.REDIS_PREFIX)
  // while Redis is down, logins are limited per instance in memory: never unlimited, never waiting
  const rateFallbacks = metrics.counter(
    'rate_limit_fallbacks_total',
    'Rate limit decisions made in memory because Redis did not answer',
  )
  const limiter = redis
    ? makeFallbackRateLimiter({
        redis,
        keys,
        timeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
        onFallback: () => rateFallbacks.inc(),
      })
    : makeMemoryRateLimiter()

  const tokens = makeTokens({
    secret: config.jwtSecret,
    jwksUrl: config.JWKS_URL,
    ttlSeconds: config.JWT_TTL_SECONDS,
    now: options.now,
  })

  const media = makeMediaStorage(config)
  // loadConfig refuses production without MEDIA_URL_SECRET and derives one elsewhere
  const mediaUrls = makeMediaUrls(config.mediaUrlSecret!, config.MEDIA_URL_TTL_SECONDS)
  const poseCache = makePoseCache({
    maxEntries: config.POSE_CACHE_ENTRIES,
    ttlMs: config.POSE_CACHE_TTL_SECONDS * 1000,
    metrics,
  })
  const libraryInvalidation = await makeLibraryInvalidation({
    redis,
    keys,
    instanceId: config.instanceId,
    clear: poseCache.clear,
    log: log.child({ room: 'library' }),
  })
  const library = makeLibrary({
    db: database.db,
    readDb,
    cache: poseCache,
    invalidation: libraryInvalidation,
  })
  const poses = { existing: library.existing, load: library.load }
  const uploadMetrics = makeUploadMetrics(metrics)
  const uploads = makeUploads({
    db: database.db,
    storage: media,
    urls: mediaUrls,
    log: log.child({ room: 'media' }),
    limits: { perHour: config.MAX_UPLOADS_PER_HOUR, quotaBytes: config.UPLOAD_QUOTA_BYTES },
    onStored: uploadMetrics.stored,
  })
  // events are written by the user actor in each transaction (the outbox); the
  // relay, made with the event log below, moves them to the log
  let relayNow = () => {}
  const outbox: Outbox = { write: writeEvents, committed: () => relayNow() }

  // the user actor: serializes every credit and generation command of one user
  type UserMessage = LedgerMessage | GenerationMessage
  type UserResult = LedgerResult | GenerationResult
  // the cluster's blocking inbox read has its own connection: main, the event log's and the
  // library's subscribers, and this one make 4 per instance, whatever the number of users
  const actorReader = redis ? redis.duplicate() : undefined
  if (actorReader) {
    actorReader.on('error', (err) => log.warn({ err }, 'redis error (actor inbox reader)'))
    await actorReader.connect()
  }
  const userActors = await makeCluster<UserMessage, UserResult>({
    name: 'user_actor',
    db: database.db,
    instanceId: config.instanceId,
    canOwn: config.isPrimaryRegion,
    redis: redis && actorReader ? { main: redis, reader: actorReader, keys } : undefined,
    wire: taggedWire<UserMessage, UserResult>({ ledger: ledgerWire, generation: generationWire }),
    leaseMs: config.ACTOR_LEASE_MS,
    forwardTimeoutMs: config.ACTOR_FORWARD_TIMEOUT_MS,
    redisTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    handle: dispatchByType<UserMessage, UserResult>({
      ledger: ledgerHandler(makeLedgerWriter(database.db), outbox.committed),
      generation: generationHandler({
        db: database.db,
        ledger: { lock: lockAccount, fence: fenceAccount, apply: applyLedgerBatch },
        outbox,
        urls: mediaUrls,
        limits: {
          imagesPerHour: config.MAX_IMAGES_PER_HOUR,
          activeGenerations: config.MAX_ACTIVE_GENERATIONS,
        },
      }),
    }),
    log: log.child({ room: 'actors' }),
    metrics,
    mailboxCapacity: config.ACTOR_MAILBOX_CAPACITY,
    batchMax: config.ACTOR_BATCH_MAX,
    idleMs: config.ACTOR_IDLE_MS,
    batchTimeoutMs: config.ACTOR_BATCH_TIMEOUT_MS,
  })
  // Fly.io: outside the primary region writes are replayed at the edge, so no command
  // reaches an actor here; if one did (a bug), it is refused rather than written
  const ask: typeof userActors.ask = config.isPrimaryRegion
    ? userActors.ask
    : () => Promise.reject(new Unavailable('This region does not take writes, retry shortly'))
  const askGeneration = (userId: string, command: GenerationCommand) =>
    ask(userId, { type: 'generation', command }) as Promise<GenerationResult>
  const credits = makeCredits((userId, message) => ask(userId, message) as Promise<LedgerResult>)

  const renderer =
    config.RENDERER === 'http'
      ? makeHttpRenderer({
          url: config.RENDER_HTTP_URL!,
          token: config.RENDER_HTTP_TOKEN ?? '',
          timeoutMs: config.RENDER_TIMEOUT_MS,
          maxConcurrency: config.RENDER_HTTP_CONCURRENCY,
          breaker: {
            failureThreshold: config.RENDER_BREAKER_THRESHOLD,
            cooldownMs: config.RENDER_BREAKER_COOLDOWN_MS,
          },
        })
      : makeLocalRenderer()
  const pool = makeRendererPool({
    db: database.db,
    instanceId: config.instanceId,
    produce: makeProducer({
      db: database.db,
      storage: media,
      renderer,
      size: config.RENDER_SIZE,
      loadUpload: uploads.load,
    }),
    report: askGeneration,
    loadPose: poses.load,
    log: log.child({ room: 'generation' }),
    metrics,
    // outside the primary region (Fly.io) it claims nothing: 0 slots
    concurrency: config.isPrimaryRegion ? config.renderConcurrency : 0,
    leaseMs: config.RENDER_LEASE_MS,
    maxAttempts: config.RENDER_MAX_ATTEMPTS,
    timeoutMs: config.RENDER_TIMEOUT_MS,
    retryBaseMs: config.RENDER_RETRY_BASE_MS,
    drainWaitMs: Math.floor(config.DRAIN_TIMEOUT_MS / 2),
  })
  const sweeper = makeSweeper({
    db: database.db,
    report: askGeneration,
    maxAttempts: config.RENDER_MAX_ATTEMPTS,
    intervalMs: config.RENDER_SWEEP_MS,
    log: log.child({ room: 'generation' }),
    enabled: config.isPrimaryRegion,
  })
  // order matters: the actors hand their users to other instances first (so commands for
  // them wait for nothing on this one), then the pool finishes its renders, reporting
  // outcomes through the actors (forwarded to the new owners), then the actors settle
  lifecycle.onDrain('actor hand-off', userActors.handOff)
  lifecycle.onDrain('renderer pool', pool.drain)
  lifecycle.onDrain('sweeper', sweeper.close)
  lifecycle.onDrain('actors', userActors.drain)
  // --- realtime: event log (Redis streams, or memory when embedded) + WebSocket gateway ---
  const events = await makeEventLog({
    redis,
    keys,
    history: config.EVENT_HISTORY,
    ttlSeconds: config.EVENT_TTL_SECONDS,
    log,
    metrics,
    fallbackBaseline: (userId) => lastEventId(database.db, userId),
  })
  const relay = makeOutboxRelay({
    db: database.db,
    events,
    log: log.child({ room: 'events' }),
    metrics,
    pollMs: config.OUTBOX_POLL_MS,
    retentionSeconds: config.OUTBOX_RETENTION_SECONDS,
    appendTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS * 2,
  })
  // what a crashed instance left behind goes out at the first poll (OUTBOX_POLL_MS)
  relayNow = relay.wake
  // after 'actors', before 'sockets': their last events go out live; what cannot
  // (Redis down) stays in the outbox for whichever instance relays next
  lifecycle.onDrain('events', async () => {
    if (!(await relay.flush(Math.floor(config.DRAIN_TIMEOUT_MS / 4))))
      log.warn('events left in the outbox: another instance relays them')
  })
  const gateway = makeGateway({
    events,
    // resolved lazily: the users service is wired further down
    tokens: { verify: (token) => principals.verify(token) },
    instanceId: config.instanceId,
    log: log.child({ room: 'realtime' }),
    metrics,
    sendBufferBytes: config.WS_SEND_BUFFER_BYTES,
    maxSocketsPerUser: config.WS_MAX_SOCKETS_PER_USER,
    authTimeoutMs: options.authTimeoutMs,
    now: options.now,
  })
  // after 'actors': sockets stay open while actors finish, so their last events can go out
  // live; a client that misses any resumes from its last id on another instance
  lifecycle.onDrain('sockets', gateway.drain)
  // --- end realtime ---
  const generations = makeGenerations({
    db: database.db,
    readDb: regionReadDb,
    ask: askGeneration,
    urls: mediaUrls,
    pricing: { perImage: config.CREDITS_PER_IMAGE, perBackground: config.CREDITS_PER_BACKGROUND },
    existingPoses: poses.existing,
    ownsUpload: async (userId, id) => (await uploads.findOwn(userId, id)) !== undefined,
    wake: () => void pool.wake(),
  })
  const idempotency = makeIdempotency(database.db, log.child({ room: 'idempotency' }), {
    sweeps: config.isPrimaryRegion,
    holdMs: config.IDEMPOTENCY_HOLD_MS,
  })

  const signupCredits = config.signupCredits

  const users = makeUsers(database.db, tokens, limiter, {
    // at registration only, idempotent per user (key 'signup')
    onRegistered:
      signupCredits > 0
        ? async (userId) =>
            void (await credits.apply(userId, {
              kind: 'grant',
              amount: signupCredits,
              reason: 'signup credits',
              key: ledgerKeys.signupGrant(),
            }))
        : undefined,
    adminEmails: config.adminEmails,
    loginRate: {
      perEmail: config.LOGIN_RATE_PER_EMAIL,
      perIp: config.LOGIN_RATE_PER_IP,
      windowSeconds: config.LOGIN_RATE_WINDOW_SECONDS,
    },
  })

  // every token is resolved to the user record it names; the record's role counts
  const principals = makeAuthenticator({
    tokens,
    findUser: users.findById,
    provision: users.provision,
    cacheTtlMs: options.userCacheTtlMs,
    cacheMax: options.userCacheMax,
    now: options.now,
  })
  const guards = makeGuards(principals)

  const startedAt = Date.now()
  const heartbeat = await makeHeartbeat({
    redis,
    keys,
    log: log.child({ room: 'stats' }),
    read: () => ({
      id: config.instanceId,
      region: config.region ?? null,
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      actorsLive: userActors.stats().live,
      ownedActors: userActors.stats().ownedActors,
      forwardsPerSecond: userActors.stats().forwardsPerSecond,
      takeovers: userActors.stats().takeovers,
      websocketConnections: gateway.connections(), // realtime
      inflightRequests: lifecycle.inflight,
      at: new Date().toISOString(),
    }),
  })
  const stats = makeStats({ db: readDb })

  const schemaIsCurrent = makeSchemaCheck(database.db)
  const checks: Record<string, () => Promise<void>> = {
    // answering is not enough: with MIGRATE_ON_START=false on a database nobody migrated,
    // every request would fail, so an unmigrated schema is not ready either
    postgres: async () => {
      await database.ping()
      if (!(await schemaIsCurrent())) throw new Error('schema not migrated: run bun run migrate')
    },
  }
  // not connected is down at once, and a PING has the command deadline: 503 within ~1 s of an outage
  if (redis)
    checks.redis = async () => {
      if (!redis.isReady) throw new Error('not connected')
      await withDeadline(config.REDIS_COMMAND_TIMEOUT_MS, 'redis ping', () => redis.ping())
    }
  if (readDatabase) checks['postgres-read'] = readDatabase.ping

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
    responseObservers: [uploadMetrics.observe],
    region: makeRegionEdge({
      primaryRegion: config.PRIMARY_REGION,
      region: config.region,
      readYourWritesMs: config.READ_YOUR_WRITES_MS,
    }),
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
      libraryRoutes({ library }),
      statsRoutes({ stats, guards }),
      generationRoutes({ generations, guards, idempotency }),
      mediaRoutes({ db: regionReadDb, storage: media, urls: mediaUrls, tokens: principals }),
      uploadRoutes({ uploads, guards, idempotency, maxFileBytes: config.MAX_UPLOAD_BYTES }),
      realtimeRoutes({ gateway, allowedOrigins: config.allowedOrigins }), // realtime
      webRoutes({ log: log.child({ room: 'web' }) }), // browser client at /
    ],
    adminRoutes: [
      creditAdminRoutes(ledgerDeps),
      libraryAdminRoutes({ library }),
      queueAdminRoutes({ db: database.db }),
      adminStatsRoutes({ stats, heartbeat }),
      actorAdminRoutes({ ownerOf: userActors.ownerOf }),
    ],
  })
  // --- realtime: Bun's WebSocket settings are per server; listen() takes the root app's ---
  app.config.websocket = { ...app.config.websocket, ...gateway.websocket }
  // --- end realtime ---

  async function close() {
    await heartbeat.close()
    idempotency.close()
    await pool.close()
    await sweeper.close()
    await userActors.close()
    await actorReader?.quit().catch(() => {})
    await relay.close()
    await renderer.close()
    limiter.close()
    await gateway.close() // realtime
    await events.close() // realtime
    await libraryInvalidation.close()
    await redis?.quit().catch(() => {})
    await readDatabase?.close()
    await database.close()
  }

  return {
    config,
    log,
    app,
    lifecycle,
    database,
    readDb,
    library,
    poseCache,
    libraryInvalidation,
    redis,
    metrics,
    tokens,
    guards,
    principals,
    userActors,
    credits,
    generations,
    pool,
    sweeper,
    media,
    mediaUrls,
    idempotency,
    uploads,
    events, // realtime
    relay, // realtime
    gateway, // realtime
    close,
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
  if (config.usingDevSecret)
    log.warn('JWT_SECRET is not set: using the development secret; never do this in production')
  if (config.mode === 'embedded')
    log.warn({ dataDir: config.DATA_DIR }, 'embedded mode: PGlite, in-memory events, one instance')

  const instance = await buildInstance(config, log)
  const server = instance.app.listen(serveOptions(config)).server!
  log.info({ url: `http://${server.hostname}:${server.port}`, mode: config.mode }, 'listening')
  if (config.mode === 'embedded') {
    const host = ['0.0.0.0', '::'].includes(server.hostname!) ? 'localhost' : server.hostname
    const url = `http://${host}:${server.port}`
    // the one line a newcomer reads, so the URL and the credits are in the message itself
    log.info(
      { url, signupCredits: config.signupCredits },
      `open ${url} to try Atelier: every new account starts with ${config.signupCredits} credits (SIGNUP_CREDITS)`,
    )
  }

  let stopping = false
  const shutdown = async (signal: string, exitCode = 0) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    const startedAt = Date.now()
    log.info({ signal, budgetMs: config.DRAIN_TIMEOUT_MS }, 'draining')
    // readiness is 503 at once; the listener stays open DRAIN_READY_GRACE_MS so health checks
    // see it, then stop(false) closes it and lets open requests finish; it is not awaited
    // because it can wait forever on open WebSockets (the sockets stage closes them)
    const drained = await instance.lifecycle.drain(
      config.DRAIN_TIMEOUT_MS,
      () => void server.stop(false),
      config.DRAIN_READY_GRACE_MS,
    )
    // closing pools is bounded too: a pool stuck on a dead dependency must not hold the exit
    const left = Math.max(1000, config.DRAIN_TIMEOUT_MS - (Date.now() - startedAt))
    const closed = await Promise.race([
      instance.close().then(
        () => true,
        (err) => (log.error({ err }, 'closing pools failed'), false),
      ),
      Bun.sleep(left).then(() => (log.error({ ms: left }, 'closing pools ran out of time'), false)),
    ])
    server.stop(true)
    const clean = drained && closed && exitCode === 0
    log.info({ clean, ms: Date.now() - startedAt }, 'drained')
    process.exit(clean ? 0 : exitCode || 1)
  }
  installProcessHandlers({
    log,
    metrics: instance.metrics,
    fatal: (reason, code) => void shutdown(reason, code),
  })
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

if (import.meta.main) await main()
