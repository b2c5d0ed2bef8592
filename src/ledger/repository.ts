import { sql, type Kysely, type Transaction } from 'kysely'
import type { DB } from '../db/schema'
import type { LedgerCommand } from './commands'

type Q = Kysely<DB> | Transaction<DB>

/** Raw outcome of ledger_apply (sql/0002_ledger.sql), one per command. */
export type AppliedRow =
  | { ok: true; replayed?: boolean; entry: Record<string, unknown> }
  | { ok: false; code: 'insufficient_credits'; required: number; available: number }
  | { ok: false; code: 'idempotency_conflict' }
  /** Refused by the database for a reason of its own (src/ledger/writer.ts). */
  | { ok: false; code: 'refused'; error: Error }

export type AppliedBatch = { balance: number; results: AppliedRow[] }

/**
 * Folds repeated keys within one batch (a double click landing in one group
 * commit): ledger_apply sees each key once, and the repeat gets the first's
 * result as a replay, or an idempotency_conflict when its kind or amount differ.
 */
export function prepareBatch(commands: readonly LedgerCommand[]) {
  const firstByKey = new Map<string, number>()
  const unique: (LedgerCommand & { id: string })[] = []
  const slot = commands.map((c) => {
    const seen = firstByKey.get(c.key)
    if (seen !== undefined) return seen
    firstByKey.set(c.key, unique.length)
    unique.push({ ...c, id: Bun.randomUUIDv7() })
    return unique.length - 1
  })
  return {
    payload: unique,
    expand(applied: AppliedBatch): AppliedBatch {
      const taken = new Set<number>()
      const results = commands.map((c, i): AppliedRow => {
        const j = slot[i]!
        const first = applied.results[j]!
        if (!taken.has(j)) {
          taken.add(j)
          return first
        }
        const original = unique[j]!
        if (original.kind !== c.kind || original.amount !== c.amount)
          return { ok: false, code: 'idempotency_conflict' }
        return first.ok ? { ...first, replayed: true } : first
      })
      return { balance: applied.balance, results }
    },
  }
}

/**
 * One round trip: lock the account row, apply every command in order, insert
 * the entries, update the balance once. Inside `trx` it joins that transaction
 * (a generation's charge commits with its rows); otherwise it is its own.
 * With an `epoch`, the owner's fencing epoch is checked first under the lock
 * (sql/0020): a stale one fails with SQLSTATE AF001 and writes nothing.
 */
export async function applyCommands(
  q: Q,
  userId: string,
  commands: readonly LedgerCommand[],
  epoch?: number,
) {
  const batch = prepareBatch(commands)
  const payload = JSON.stringify(batch.payload)
  const { rows } =
    epoch === undefined
      ? await sql<{ r: AppliedBatch }>`
          select ledger_apply(${userId}::uuid, ${payload}::text::jsonb) as r`.execute(q)
      : await sql<{ r: AppliedBatch }>`
          select ledger_apply(${userId}::uuid, ${payload}::text::jsonb, ${epoch}::bigint) as r`.execute(
          q,
        )
  return batch.expand(rows[0]!.r)
}

/**
 * Several users' batches in one statement (the writer's group commit), the
 * JSON payload already encoded. Fenced (cluster mode): each batch's epoch is
 * checked under its account lock, and a stale one is answered
 * `{ fenced: true }` alone while the others commit.
 */
export async function applyGroup(
  trx: Transaction<DB>,
  payload: string,
  fenced: boolean,
): Promise<Record<string, AppliedBatch | { fenced: true }>> {
  const { rows } = fenced
    ? await sql<{ r: Record<string, AppliedBatch | { fenced: true }> }>`
        select ledger_apply_many_fenced(${payload}::text::jsonb) as r`.execute(trx)
    : await sql<{ r: Record<string, AppliedBatch> }>`
        select ledger_apply_many(${payload}::text::jsonb) as r`.execute(trx)
  return rows[0]!.r
}

/**
 * Locks the user's account row (opening it when missing) for the rest of
 * `trx`: everything that must be decided against the balance, across
 * instances, is decided under this lock.
 */
export async function lockAccount(trx: Transaction<DB>, userId: string) {
  await trx
    .insertInto('credit_accounts')
    .values({ user_id: userId, balance: 0, last_seq: 0 })
    .onConflict((oc) => oc.column('user_id').doNothing())
    .execute()
  return trx
    .selectFrom('credit_accounts')
    .selectAll()
    .where('user_id', '=', userId)
    .forUpdate()
    .executeTakeFirstOrThrow()
}

/**
 * The fence of a fenced transaction (sql/0020): the account row lock, then
 * the owner's epoch checked under it; SQLSTATE AF001 when it is stale.
 */
export async function fenceAccount(trx: Transaction<DB>, userId: string, epoch: number) {
  await sql`select actor_fence(${userId}::uuid, ${epoch}::bigint)`.execute(trx)
}

export async function readBalance(q: Q, userId: string): Promise<number> {
  const row = await q
    .selectFrom('credit_accounts')
    .select('balance')
    .where('user_id', '=', userId)
    .executeTakeFirst()
  return row ? Number(row.balance) : 0
}

export function listEntries(q: Q, userId: string, limit: number, beforeSeq?: number) {
  let query = q
    .selectFrom('ledger_entries')
    .selectAll()
    .where('user_id', '=', userId)
    .orderBy('seq', 'desc')
    .limit(limit)
  if (beforeSeq !== undefined) query = query.where('seq', '<', beforeSeq)
  return query.execute()
}

/** Whether the user has an entry under this command key (one probe of its unique index). */
export async function hasEntry(q: Q, userId: string, key: string) {
  const row = await q
    .selectFrom('ledger_entries')
    .select('seq')
    .where('user_id', '=', userId)
    .where('idempotency_key', '=', key)
    .executeTakeFirst()
  return row !== undefined
}

export function userExists(q: Q, userId: string) {
  return q.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst()
}

/**
 * Accounts whose balance differs from the sum of their entries, or with an
 * entry whose balance_after does not follow from the previous one. Set-based:
 * one scan of each table, whatever the number of users.
 */
export async function ledgerMismatches(q: Q) {
  const { rows } = await sql<{ user_id: string; balance: number; sum_of_entries: number }>`
    with sums as (
      select a.user_id, a.balance, coalesce(sum(e.amount), 0)::bigint as sum_of_entries
      from credit_accounts a left join ledger_entries e on e.user_id = a.user_id
      group by a.user_id, a.balance
    ), chained as (
      select user_id, seq, amount, balance_after,
        lag(balance_after, 1, 0::bigint) over w as previous_balance,
        lag(seq, 1, 0::bigint) over w as previous_seq
      from ledger_entries
      window w as (partition by user_id order by seq)
    )
    select user_id, balance, sum_of_entries from sums
    where balance <> sum_of_entries
       or user_id in (
         select user_id from chained
         where balance_after <> previous_balance + amount or seq <> previous_seq + 1)
    order by user_id`.execute(q)
  return rows
}

export async function countAccounts(q: Q) {
  const row = await q
    .selectFrom('credit_accounts')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return Number(row.n)
}
