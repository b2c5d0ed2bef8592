import type { Kysely } from 'kysely'
import { Conflict, IdempotencyConflict, RateLimited, Unauthorized } from '../errors'
import type { Idempotency } from '../idempotency/idempotency'
import type { DB } from '../db/schema'
import type { RateLimiter } from './rate-limit'
import type { ExternalIdentity } from './principals'
import { provisionUser } from './provision'
import { findUserByEmail, findUserById, insertUser } from './repository'
import type { Role, UserRow } from './table'
import type { Tokens } from './tokens'

export type PublicUser = { id: string; email: string | null; role: Role; createdAt: string }

export type UsersDeps = {
  db: Kysely<DB>
  tokens: Tokens
  /** The login rate limit's counters. */
  limiter: RateLimiter
  adminEmails: ReadonlySet<string>
  loginRate: { perEmail: number; perIp: number; windowSeconds: number }
  /**
   * Called once, at registration, after the user row exists (signup credits);
   * idempotent per user. Never on login: a login costs no actor round trip.
   */
  onRegistered?: (userId: string) => Promise<void>
  /** Where a registration's Idempotency-Key is recorded. */
  idempotency: Pick<Idempotency, 'record' | 'recordedAnswer'>
}

/** A registration's record: its key, and the request it names (the account, by email). */
type Registration = { key: string; requestHash: string }

const registration = (email: string, key: string): Registration => ({
  key,
  requestHash: new Bun.CryptoHasher('sha256')
    .update(`POST /v1/auth/register\n${email}`)
    .digest('hex'),
})

export type Users = ReturnType<typeof makeUsers>

export function toPublicUser(row: UserRow): PublicUser {
  return { id: row.id, email: row.email, role: row.role, createdAt: row.created_at.toISOString() }
}

export function makeUsers(deps: UsersDeps) {
  const { db, tokens, limiter } = deps
  // Verifying against a real argon2id hash when the email is unknown keeps both
  // failures equally slow, so response time does not reveal which emails exist.
  const decoyHash = Bun.password.hash(crypto.randomUUID(), 'argon2id')

  /**
   * A new account and its token. With an Idempotency-Key the key belongs to
   * the account it creates: recorded in the transaction that inserts the user,
   * so a retry of the same registration (same email and key, and the same
   * password, checked against the stored hash: the record keeps no password
   * in any form) is answered 201 again, `replayed`, with a new token (tokens
   * are never stored). The same email and key with another password is 409
   * idempotency_conflict; without the key, or with another, 409 conflict.
   */
  async function register(email: string, password: string, idempotencyKey?: string) {
    const normalized = email.trim().toLowerCase()
    const record =
      idempotencyKey === undefined ? undefined : registration(normalized, idempotencyKey)
    const passwordHash = await Bun.password.hash(password, 'argon2id')
    const user = {
      id: Bun.randomUUIDv7(),
      email: normalized,
      passwordHash,
      role: (deps.adminEmails.has(normalized) ? 'admin' : 'user') as Role,
    }
    let replayed = false
    const row = await (
      record
        ? db.transaction().execute(async (trx) => {
            const row = await insertUser(trx, user)
            const body = { user: toPublicUser(row) }
            await deps.idempotency.record(trx, [{ userId: row.id, ...record, status: 201, body }])
            return row
          })
        : insertUser(db, user)
    ).catch(async (error: unknown) => {
      if ((error as { code?: string }).code !== '23505') throw error
      const prior = record && (await replayRegistration(normalized, password, record))
      if (!prior) throw new Conflict('An account with this email already exists')
      replayed = true
      return prior
    })
    // a replay grants too: the signup grant is idempotent, and the first may have died before it
    await deps.onRegistered?.(row.id)
    return { user: toPublicUser(row), token: await tokens.sign(row.id, row.role), replayed }
  }

  /** The existing account a retried registration created, once its password is checked. */
  async function replayRegistration(email: string, password: string, record: Registration) {
    const row = await findUserByEmail(db, email)
    if (!row?.password_hash || !(await deps.idempotency.recordedAnswer(row.id, record)))
      return undefined
    // checking the password is a login attempt: it counts against the same limit
    const { perEmail, windowSeconds } = deps.loginRate
    const limit = await limiter.hit('login-email', email, perEmail, windowSeconds)
    if (!limit.allowed) throw new RateLimited(limit.retryAfterSeconds)
    if (!(await Bun.password.verify(password, row.password_hash))) throw new IdempotencyConflict()
    return row
  }

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
