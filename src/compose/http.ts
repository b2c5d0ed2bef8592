import pkg from '../../package.json'
import { actorAdminRoutes, type ActorAdminRoutesDeps } from '../actors/routes'
import type { Config } from '../config/config'
import { generationRoutes } from '../generation/routes'
import type { Generations } from '../generation/service'
import { createApp } from '../http/app'
import { healthRoutes } from '../http/health-routes'
import { metricsRoutes } from '../http/metrics-routes'
import { makeRegionEdge } from '../http/region'
import type { Idempotency } from '../idempotency/idempotency'
import type { Credits } from '../ledger/credits'
import { creditAdminRoutes, creditRoutes } from '../ledger/routes'
import { readBalance } from '../ledger/service'
import { libraryAdminRoutes, libraryRoutes } from '../library/routes'
import type { Library } from '../library/service'
import { mediaRoutes } from '../media/routes'
import { uploadRoutes } from '../media/upload-routes'
import type { Logger } from '../obs/logger'
import type { Gateway } from '../realtime/gateway'
import { realtimeRoutes } from '../realtime/routes'
import type { Heartbeat } from '../stats/heartbeat'
import { adminStatsRoutes, queueAdminRoutes, statsRoutes } from '../stats/routes'
import { makeStats } from '../stats/service'
import { userRoutes } from '../users/routes'
import { webRoutes } from '../web/routes'
import type { composeMedia } from './content'
import type { Foundation } from './foundation'
import { readinessChecks } from './operations'
import type { composeUsers } from './users'

export type AppDeps = {
  users: ReturnType<typeof composeUsers>
  media: ReturnType<typeof composeMedia>
  library: Library
  credits: Credits
  generations: Generations
  idempotency: Idempotency
  gateway: Gateway
  heartbeat: Heartbeat
  /** GET and DELETE /v1/admin/actors/:userId: who owns a user's actor, a rebalance (actors/cluster.ts). */
  actors: ActorAdminRoutesDeps
}

/** The Elysia app: every room's routes, the admin group, the region edge, the socket settings. */
export function composeApp(f: Foundation, config: Config, log: Logger, deps: AppDeps) {
  const { users, media, library, credits, generations, idempotency, gateway } = deps
  const { guards } = users
  const stats = makeStats({ db: f.readDb, queueDb: f.database.db })
  const ledgerDeps = {
    db: f.database.db,
    guards,
    credits,
    idempotency,
    webhookSecret: config.PAYMENT_WEBHOOK_SECRET,
  }
  const app = createApp({
    log,
    metrics: f.metrics,
    lifecycle: f.lifecycle,
    guards,
    version: pkg.version,
    maxBodyBytes: config.MAX_BODY_BYTES,
    responseObservers: [media.uploadMetrics.observe],
    region: makeRegionEdge({
      primaryRegion: config.PRIMARY_REGION,
      region: config.region,
      readYourWritesMs: config.READ_YOUR_WRITES_MS,
    }),
    routes: [
      healthRoutes({
        lifecycle: f.lifecycle,
        checks: readinessChecks(f, config),
        log: log.child({ room: 'health' }),
        instanceId: config.instanceId,
        region: config.region,
        version: pkg.version,
      }),
      metricsRoutes(f.metrics, config.METRICS_TOKEN),
      userRoutes({
        users: users.users,
        guards,
        trustProxy: config.TRUST_PROXY,
        balanceOf: (userId) => readBalance(f.database.db, userId),
      }),
      creditRoutes(ledgerDeps),
      libraryRoutes({ library }),
      statsRoutes({ stats, guards }),
      generationRoutes({ generations, guards, idempotency }),
      mediaRoutes({
        db: f.regionReadDb,
        storage: media.storage,
        urls: media.urls,
        tokens: users.principals,
      }),
      uploadRoutes({
        uploads: media.uploads,
        guards,
        idempotency,
        maxFileBytes: config.MAX_UPLOAD_BYTES,
      }),
      realtimeRoutes({ gateway, allowedOrigins: config.allowedOrigins }),
      webRoutes({ log: log.child({ room: 'web' }) }), // browser client at /
    ],
    adminRoutes: [
      creditAdminRoutes(ledgerDeps),
      libraryAdminRoutes({ library, guards, idempotency }),
      queueAdminRoutes({ stats }),
      adminStatsRoutes({ stats, heartbeat: deps.heartbeat }),
      actorAdminRoutes(deps.actors),
    ],
  })
  // Bun's WebSocket settings are per server; listen() takes the root app's
  app.config.websocket = { ...app.config.websocket, ...gateway.websocket }
  return app
}
