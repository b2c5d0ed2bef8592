import { sql, type Kysely } from 'kysely'
import type { DB } from '../db/schema'

/**
 * Ownership records in Postgres (sql/0020_actor_owners.sql), the truth of
 * who owns a user's actor. SQL only; the rules of when to claim are in
 * cluster.ts.
 */
export type Ownership = { userId: string; owner: string | null; epoch: number; since: Date }

/** A claim's answer: the record, and how long its owner's claim lease still runs (ms). */
export type Claimed = Ownership & { leaseLeftMs: number }

type Row = { user_id: string; owner: string | null; epoch: number | string; since: Date | string }

function toOwnership(r: Row): Ownership {
  return { userId: r.user_id, owner: r.owner, epoch: Number(r.epoch), since: new Date(r.since) }
}

/**
 * Claims `userId` for `owner`: wins when nobody owns it, when `owner` already
 * does, or when its owner is `dead` (found without a heartbeat) and that
 * claim's lease passed. A win raises the epoch. Returns the record as it
 * stands after the call: compare `owner` to see who won.
 */
export async function claimOwner(
  db: Kysely<DB>,
  userId: string,
  owner: string,
  dead: string | null,
  leaseMs: number,
): Promise<Claimed> {
  const { rows } = await sql<Row & { lease_left_ms: number }>`
    select user_id, owner, epoch, since,
      greatest(0, ceil(extract(epoch from lease_until - now()) * 1000))::int as lease_left_ms
    from actor_claim(${userId}::uuid, ${owner}, ${dead}, ${leaseMs}::integer)`.execute(db)
  return { ...toOwnership(rows[0]!), leaseLeftMs: Number(rows[0]!.lease_left_ms) }
}

export async function readOwner(db: Kysely<DB>, userId: string): Promise<Ownership | undefined> {
  const row = await db
    .selectFrom('actor_owners')
    .select(['user_id', 'owner', 'epoch', 'since'])
    .where('user_id', '=', userId)
    .executeTakeFirst()
  return row ? toOwnership(row as Row) : undefined
}

/**
 * Gives up everything `owner` holds (drain): the next command anywhere
 * claims at once. The epoch is raised by that claim, under the account lock.
 */
export async function releaseAll(db: Kysely<DB>, owner: string): Promise<string[]> {
  const rows = await db
    .updateTable('actor_owners')
    .set({ owner: null })
    .where('owner', '=', owner)
    .returning('user_id')
    .execute()
  return rows.map((r) => r.user_id)
}

/**
 * Gives up one user (an explicit rebalance), if `owner` still holds it at
 * `epoch`: the record as it was (its owner, epoch and claim time), or
 * undefined when it was not held so. The epoch stays: the next claim raises it.
 */
export async function releaseOne(
  db: Kysely<DB>,
  userId: string,
  owner: string,
  epoch: number,
): Promise<Ownership | undefined> {
  const row = await db
    .updateTable('actor_owners')
    .set({ owner: null })
    .where('user_id', '=', userId)
    .where('owner', '=', owner)
    .where('epoch', '=', epoch)
    .returning(['user_id', 'epoch', 'since'])
    .executeTakeFirst()
  return row ? toOwnership({ ...(row as Row), owner }) : undefined
}
