import type { Kysely, Transaction } from 'kysely'
import type { DB } from '../db/schema'
import type { Role } from './table'

type Q = Kysely<DB> | Transaction<DB>

export function insertUser(
  q: Q,
  user: { id: string; email: string; passwordHash: string; role: Role },
) {
  return q
    .insertInto('users')
    .values({ id: user.id, email: user.email, password_hash: user.passwordHash, role: user.role })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export function findUserByEmail(q: Q, email: string) {
  return q
    .selectFrom('users')
    .selectAll()
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .executeTakeFirst()
}

/** The local user an identity provider's (issuer, subject) names, if it was seen before. */
export function findUserByIdentity(q: Q, issuer: string, subject: string) {
  return q
    .selectFrom('user_identities')
    .innerJoin('users', 'users.id', 'user_identities.user_id')
    .selectAll('users')
    .where('user_identities.issuer', '=', issuer)
    .where('user_identities.subject', '=', subject)
    .executeTakeFirst()
}

/** A user without a password, provisioned from an identity; its email only when free. */
export function insertProvisionedUser(
  q: Q,
  user: { id: string; email: string | undefined; role: Role },
) {
  const email = user.email ?? null
  return q
    .insertInto('users')
    .values((eb) => ({
      id: user.id,
      email:
        email === null
          ? null
          : eb
              .case()
              .when(
                eb.exists(
                  eb
                    .selectFrom('users')
                    .select('id')
                    .where(eb.fn('lower', ['email']), '=', email.toLowerCase()),
                ),
              )
              .then(null)
              .else(email)
              .end(),
      password_hash: null,
      role: user.role,
    }))
    .returningAll()
    .executeTakeFirstOrThrow()
}

/** Links an identity to a user; false when another request linked it first. */
export async function insertIdentity(
  q: Q,
  identity: { issuer: string; subject: string; userId: string; email: string | undefined },
) {
  const row = await q
    .insertInto('user_identities')
    .values({
      issuer: identity.issuer,
      subject: identity.subject,
      user_id: identity.userId,
      email: identity.email ?? null,
    })
    .onConflict((oc) => oc.columns(['issuer', 'subject']).doNothing())
    .returning('user_id')
    .executeTakeFirst()
  return row !== undefined
}

export function findUserById(q: Q, id: string) {
  return q.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function countUsers(q: Q) {
  const row = await q
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return Number(row.n)
}
