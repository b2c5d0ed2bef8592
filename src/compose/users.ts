import type { Config } from '../config/config'
import type { Logger } from '../obs/logger'
import { makeGuards } from '../http/guards'
import { signupGrant, type Credits } from '../ledger/credits'
import { makeAuthenticator } from '../users/principals'
import { makeFallbackRateLimiter, makeMemoryRateLimiter } from '../users/rate-limit'
import { makeUsers } from '../users/service'
import type { Idempotency } from '../idempotency/idempotency'
import { makeTokens } from '../users/tokens'
import type { Foundation } from './foundation'

export type UsersOverrides = {
  /** The clock token expiries are checked by (default Date.now); tests move it. */
  now?: () => number
  /** How long a resolved user record is trusted (default 30,000 ms). */
  userCacheTtlMs?: number
  /** Resolved user records kept (default 10,000). */
  userCacheMax?: number
}

/**
 * The users room: tokens, the login rate limiter (Redis, falling back to
 * memory while Redis does not answer: never unlimited, never waiting), the
 * users service with the signup grant, and the authenticator every token is
 * resolved by (the record's role counts), with the guards built on it.
 */
export function composeUsers(
  f: Foundation,
  config: Config,
  log: Logger,
  overrides: UsersOverrides,
  credits: Credits,
  idempotency: Idempotency,
) {
  const rateFallbacks = f.metrics.counter(
    'rate_limit_fallbacks_total',
    'Rate limit decisions made in memory because Redis did not answer',
  )
  const limiter = f.redis
    ? makeFallbackRateLimiter({
        redis: f.redis,
        keys: f.keys,
        timeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
        onFallback: () => rateFallbacks.inc(),
      })
    : makeMemoryRateLimiter()
  f.lifecycle.onClose('rate limiter', limiter.close)
  const tokens = makeTokens({
    secret: config.jwtSecret,
    jwksUrl: config.JWKS_URL,
    ttlSeconds: config.JWT_TTL_SECONDS,
    now: overrides.now,
  })
  const users = makeUsers({
    db: f.database.db,
    tokens,
    limiter,
    signupCredits: signupGrant(credits, f.database.db, config.signupCredits),
    log: log.child({ room: 'users' }),
    idempotency,
    adminEmails: config.adminEmails,
    loginRate: {
      perEmail: config.LOGIN_RATE_PER_EMAIL,
      perIp: config.LOGIN_RATE_PER_IP,
      windowSeconds: config.LOGIN_RATE_WINDOW_SECONDS,
    },
  })
  const principals = makeAuthenticator({
    tokens,
    findUser: users.findById,
    provision: users.provision,
    cacheTtlMs: overrides.userCacheTtlMs,
    cacheMax: overrides.userCacheMax,
    now: overrides.now,
  })
  return { tokens, users, principals, guards: makeGuards(principals) }
}
