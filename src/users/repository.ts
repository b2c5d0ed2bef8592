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
