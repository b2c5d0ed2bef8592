import { Unauthorized } from '../errors'
import { UUID_PATTERN } from '../ids'
import type { Role, UserRow } from './table'
import type { Tokens, VerifiedToken } from './tokens'

/**
 * Tokens name real users. A verified token is resolved to its user record:
 * a local token's `sub` must be the id of a user that exists; an external
 * token's (issuer, subject) is mapped to a local user, provisioned on first
 * sight. The role that counts is the record's, never the token's claim.
 *
 * Records are cached (bounded LRU, short TTL): a cache entry is
 *   absent ──lookup──▶ fresh ──ttl passes──▶ stale (looked up again on next use)
 *   fresh/stale ──forget(userId)──▶ absent
 * so a deleted user or a changed role counts within `cacheTtlMs` on every
 * instance, and at once on the instance that calls forget().
 */
export type Principal = { userId: string; role: Role; expiresAt: number }

export type Authenticator = ReturnType<typeof makeAuthenticator>

export type ExternalIdentity = Extract<VerifiedToken, { kind: 'external' }>

export type AuthenticatorDeps = {
  tokens: Pick<Tokens, 'verify'>
  /** The user with this id, if it exists. */
  findUser: (userId: string) => Promise<UserRow | undefined>
  /** The local user this identity names, created when it is new. */
  provision: (identity: ExternalIdentity) => Promise<UserRow>
  /** Users kept (default 10,000). */
  cacheMax?: number
  /** How long a cached record is trusted (default 30,000 ms). */
  cacheTtlMs?: number
  now?: () => number
}

/** What an identity's issuer and subject may be: bounded printable text, stored as is. */
const IDENTITY_PART = /^[\x21-\x7e]{1,255}$/

type Cached = { userId: string; role: Role; at: number }

export function makeAuthenticator(deps: AuthenticatorDeps) {
  const { tokens } = deps
  const max = deps.cacheMax ?? 10_000
  const ttlMs = deps.cacheTtlMs ?? 30_000
  const now = deps.now ?? Date.now
  // a Map iterates in insertion order: re-inserting on use makes the first key the least recent
  const cache = new Map<string, Cached>()
  // concurrent first requests of one new identity provision it once
  const provisioning = new Map<string, Promise<UserRow>>()

  function remember(key: string, row: UserRow) {
    cache.delete(key)
    cache.set(key, { userId: row.id, role: row.role, at: now() })
    if (cache.size > max) cache.delete(cache.keys().next().value!)
  }

  function recall(key: string): Cached | undefined {
    const hit = cache.get(key)
    if (!hit) return undefined
    cache.delete(key)
    if (now() - hit.at > ttlMs) return undefined
    cache.set(key, hit)
    return hit
  }

  async function lookup(verified: VerifiedToken): Promise<Cached> {
    if (verified.kind === 'local') {
      // a malformed id is no user: 401 here, never a database error
      if (!UUID_PATTERN.test(verified.subject)) throw new Unauthorized('This token names no user')
      const key = `id ${verified.subject.toLowerCase()}`
      const hit = recall(key)
      if (hit) return hit
      const row = await deps.findUser(verified.subject)
      if (!row) throw new Unauthorized('This account no longer exists')
      remember(key, row)
      return cache.get(key)!
    }
    if (!IDENTITY_PART.test(verified.issuer) || !IDENTITY_PART.test(verified.subject))
      throw new Unauthorized('This token names no identity this server can store')
    const key = `identity ${verified.issuer} ${verified.subject}`
    const hit = recall(key)
    if (hit) return hit
    let pending = provisioning.get(key)
    if (!pending) {
      pending = deps.provision(verified).finally(() => provisioning.delete(key))
      provisioning.set(key, pending)
    }
    remember(key, await pending)
    return cache.get(key)!
  }

  return {
    /** The principal of a bearer token, or Unauthorized. */
    async verify(token: string): Promise<Principal> {
      const verified = await tokens.verify(token)
      const user = await lookup(verified)
      return { userId: user.userId, role: user.role, expiresAt: verified.expiresAt }
    },

    /** Call when a user record changes or is deleted: the next request reads it again. */
    forget(userId: string) {
      for (const [key, entry] of cache) if (entry.userId === userId) cache.delete(key)
    },

    cacheSize: () => cache.size,
  }
}
