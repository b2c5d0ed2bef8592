import type { Kysely } from 'kysely'
import type { Logger } from '../obs/logger'
import { RateLimited, Unauthorized } from '../errors'
import type { Idempotency } from '../idempotency/idempotency'
import type { DB } from '../db/schema'
import type { RateLimiter } from './rate-limit'
import type { ExternalIdentity } from './principals'
import { provisionUser } from './provision'
import { makeRegister } from './register'
import { findUserByEmail, findUserById } from './repository'
import { toPublicUser } from './present'
import type { Tokens } from './tokens'

export type UsersDeps = {
  db: Kysely<DB>
  tokens: Tokens
  /** The login rate limit's counters. */
  limiter: RateLimiter
  adminEmails: ReadonlySet<string>
  loginRate: { perEmail: number; perIp: number; windowSeconds: number }
  /**
   * Grants the signup credits unless the user has them (idempotent per user):
   * at registration once the user row exists, and at each login, where it is
   * a read and asks no actor unless the registration ended before its grant.
   */
  signupCredits?: (userId: string) => Promise<void>
  /** Where a repair that failed is told (the signup credits at login). */
  log?: Logger
  /** Where a registration's Idempotency-Key is recorded. */
  idempotency: Pick<Idempotency, 'record' | 'recordedAnswer'>
}

export type Users = ReturnType<typeof makeUsers>

export function makeUsers(deps: UsersDeps) {
  const { db, tokens, limiter } = deps
  // Verifying against a real argon2id hash when the email is unknown keeps both
  // failures equally slow, so response time does not reveal which emails exist.
  const decoyHash = Bun.password.hash(crypto.randomUUID(), 'argon2id')
  const register = makeRegister(deps)

  async function login(email: string, password: string, ip: string) {
    const normalized = email.trim().toLowerCase()
    const { perEmail, perIp, windowSeconds } = deps.loginRate
    const [byIp, byEmail] = await Promise.all([
      limiter.hit('login-ip', ip, perIp, windowSeconds),
      limiter.hit('login-email', normalized, perEmail, windowSeconds),
    ])
    if (!byIp.allowed || !byEmail.allowed)
      throw new RateLimited(Math.max(byIp.retryAfterSeconds, byEmail.retryAfterSeconds))
    const row = await findUserByEmail(db, normalized)
    // a user provisioned from an identity has no password: it fails like an unknown email
    const ok = await Bun.password.verify(password, row?.password_hash ?? (await decoyHash))
    if (!row?.password_hash || !ok) throw new Unauthorized('Email or password is incorrect')
    // a repair, never a reason to refuse a login: the next one tries again
    await deps
      .signupCredits?.(row.id)
      .catch((err: unknown) =>
        deps.log?.warn({ err, userId: row.id }, 'signup credits not granted at login'),
      )
    return { user: toPublicUser(row), token: await tokens.sign(row.id, row.role) }
  }

  async function get(userId: string) {
    const row = await findUserById(db, userId)
    if (!row) throw new Unauthorized('This account no longer exists')
    return toPublicUser(row)
  }

  return {
    register,
    login,
    get,
    /** The local user an identity names, created the first time it is seen (provision.ts). */
    provision: (identity: ExternalIdentity) => provisionUser(deps, identity),
    findById: (id: string) => findUserById(db, id),
  }
}
