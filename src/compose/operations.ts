import type { Config } from '../config/config'
import { makeSchemaCheck } from '../db/migrator'
import { CheckFailed } from '../http/health-routes'
import type { Logger } from '../obs/logger'
import { withDeadline } from '../redis/client'
import { makeHeartbeat } from '../stats/heartbeat'
import type { Foundation } from './foundation'

/**
 * What operators see: this instance's heartbeat record (its live figures
 * for /v1/admin/stats) and the readiness checks of /health/ready.
 */
export async function composeHeartbeat(
  f: Foundation,
  config: Config,
  log: Logger,
  live: {
    actors: () => {
      live: number
      ownedActors: number
      forwardsPerSecond: number
      takeovers: number
    }
    websocketConnections: () => number
  },
) {
  const startedAt = Date.now()
  const heartbeat = await makeHeartbeat({
    redis: f.redis,
    keys: f.keys,
    // as long as an actor owner's lease: an instance that died leaves the list when its
    // users are taken over, not 15 s later with its last figures still counted
    intervalMs: config.ACTOR_LEASE_MS / 3,
    ttlSeconds: Math.max(1, Math.ceil(config.ACTOR_LEASE_MS / 1000)),
    log: log.child({ room: 'stats' }),
    read: () => {
      const actors = live.actors()
      return {
        id: config.instanceId,
        region: config.region ?? null,
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
        actorsLive: actors.live,
        ownedActors: actors.ownedActors,
        forwardsPerSecond: actors.forwardsPerSecond,
        takeovers: actors.takeovers,
        websocketConnections: live.websocketConnections(),
        inflightRequests: f.lifecycle.inflight,
        at: new Date().toISOString(),
      }
    },
  })
  f.lifecycle.onClose('heartbeat', heartbeat.close)
  return heartbeat
}

/** /health/ready's checks: each dependency answers within its deadline, and the schema is current. */
export function readinessChecks(f: Foundation, config: Config) {
  const schemaIsCurrent = makeSchemaCheck(f.database.db)
  const checks: Record<string, () => Promise<void>> = {
    // answering is not enough: with MIGRATE_ON_START=false on a database nobody migrated,
    // every request would fail, so an unmigrated schema is not ready either
    postgres: async () => {
      await f.database.ping()
      if (!(await schemaIsCurrent()))
        throw new CheckFailed('schema not migrated: run bun run migrate')
    },
  }
  const redis = f.redis
  // not connected is down at once, and a PING has the command deadline: 503 within ~1 s of an outage
  if (redis)
    checks.redis = async () => {
      if (!redis.isReady) throw new CheckFailed('not connected')
      await withDeadline(config.REDIS_COMMAND_TIMEOUT_MS, 'redis ping', () => redis.ping())
    }
  if (f.readDatabase) checks['postgres-read'] = f.readDatabase.ping
  return checks
}
