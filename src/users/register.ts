import { Conflict, IdempotencyConflict, RateLimited } from '../errors'
import { findUserByEmail, insertUser } from './repository'
import type { UsersDeps } from './service'
import { toPublicUser } from './present'
import type { Role } from './table'

/** A registration's record: its key, and the request it names (the account, by email). */
type Registration = { key: string; requestHash: string }

const registration = (email: string, key: string): Registration => ({
  key,
  requestHash: new Bun.CryptoHasher('sha256')
    .update(`POST /v1/auth/register\n${email}`)
    .digest('hex'),
})

/**
 * A new account and its token. With an Idempotency-Key the key belongs to
 * the account it creates: recorded in the transaction that inserts the user,
 * so a retry of the same registration (same email and key, and the same
 * password, checked against the stored hash: the record keeps no password
 * in any form) is answered 201 again, `replayed`, with a new token (tokens
 * are never stored). The same email and key with another password is 409
 * idempotency_conflict; without the key, or with another, 409 conflict.
 */
export function makeRegister(deps: UsersDeps) {
  const { db, tokens, limiter } = deps
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
    await deps.signupCredits?.(row.id)
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

  return register
}
