import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import type { Logger } from '../obs/logger'
import type { ExternalIdentity } from './principals'
import { findUserByIdentity, insertIdentity, insertProvisionedUser } from './repository'
import type { Role, UserRow } from './table'

export type ProvisionDeps = {
  db: Kysely<DB>
  adminEmails: ReadonlySet<string>
  /** Signup credits, as at registration; idempotent per user. */
  signupCredits?: (userId: string) => Promise<void>
  log?: Logger
}

class IdentityTaken extends Error {}

/**
 * Just-in-time provisioning (JWKS_URL mode): the local user an identity
 * names, created the first time it is seen. Its email is the provider's
 * claim when no other account has it; ADMIN_EMAILS count only for a claim
 * the provider marked verified. Signup credits as at registration, and
 * for a known identity whose first request ended before its grant.
 */
export async function provisionUser(
  deps: ProvisionDeps,
  identity: ExternalIdentity,
): Promise<UserRow> {
  const { db } = deps
  const known = await findUserByIdentity(db, identity.issuer, identity.subject)
  if (known) {
    // a read (the principal cache asks once per TTL); a grant only if the first request's
    // failed, and a repair that fails again refuses nothing: the next cache miss tries again
    await deps
      .signupCredits?.(known.id)
      .catch((err: unknown) =>
        deps.log?.warn({ err, userId: known.id }, 'signup credits not granted on sight'),
      )
    return known
  }
  const email = identity.email?.trim().toLowerCase() || undefined
  const role: Role =
    email !== undefined && identity.emailVerified && deps.adminEmails.has(email) ? 'admin' : 'user'
  const created = await db
    .transaction()
    .execute(async (trx) => {
      const row = await insertProvisionedUser(trx, { id: Bun.randomUUIDv7(), email, role })
      const linked = await insertIdentity(trx, { ...identity, email, userId: row.id })
      // another instance linked it first: roll this user back, use theirs
      if (!linked) throw new IdentityTaken()
      return row
    })
    .catch((error: unknown) => {
      // IdentityTaken, or our email check lost a race (23505): the identity's row decides
      if (error instanceof IdentityTaken || (error as { code?: string }).code === '23505')
        return undefined
      throw error
    })
  if (!created) {
    const linked = await findUserByIdentity(db, identity.issuer, identity.subject)
    if (linked) return linked
    if (email === undefined) throw new Error('provisioning an identity failed twice')
    // the email was taken between the check and the insert: provision without it
    return provisionUser(deps, { ...identity, email: undefined })
  }
  await deps.signupCredits?.(created.id)
  return created
}
