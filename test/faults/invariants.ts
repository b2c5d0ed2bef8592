import { expect } from 'bun:test'
import type postgres from 'postgres'
import type { Operation, Response_ } from './load'

/**
 * What must hold after any fault, checked on the database itself:
 * every item ended once with one image, refunds exact, the ledger reconciles,
 * and each user's balance is exactly what the operations that took effect say.
 */
export async function settleItems(sql: postgres.Sql, ms = 30_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const [row] = await sql`select count(*)::int as open from generation_items
      where status in ('queued', 'running')`
    if (row!.open === 0) return
    if (Date.now() > deadline) throw new Error(`${row!.open} items still open after ${ms} ms`)
    await Bun.sleep(100)
  }
}

export async function checkInvariants(sql: postgres.Sql, operations: Operation[]) {
  // every item ended exactly once: succeeded with one image of its own, or failed/cancelled without
  const items = await sql`select status, image_media_id from generation_items`
  for (const i of items) {
    expect(['succeeded', 'failed', 'cancelled']).toContain(i.status)
    if (i.status === 'succeeded') expect(i.image_media_id).not.toBeNull()
    else expect(i.image_media_id).toBeNull()
  }
  const [images] = await sql`select count(*)::int as n, count(distinct image_media_id)::int as d
    from generation_items where status = 'succeeded'`
  expect(images!.d).toBe(images!.n)

  // a generation's counters match its items, and its refund is exactly its failed and cancelled items
  const gens = await sql`
    select g.id, g.user_id, g.status, g.total_items, g.succeeded_items, g.failed_items,
      g.cancelled_items, g.credits_charged, g.credits_refunded, g.price_per_item,
      (select count(*)::int from generation_items i where i.generation_id = g.id and i.status = 'succeeded') as s,
      (select count(*)::int from generation_items i where i.generation_id = g.id and i.status = 'failed') as f,
      (select count(*)::int from generation_items i where i.generation_id = g.id and i.status = 'cancelled') as c,
      (select coalesce(sum(amount), 0)::bigint from ledger_entries e
        where e.generation_id = g.id and e.kind = 'refund') as refunded
    from generations g`
  for (const g of gens) {
    expect([g.succeeded_items, g.failed_items, g.cancelled_items]).toEqual([g.s, g.f, g.c])
    expect(Number(g.credits_refunded)).toBe(Number(g.price_per_item) * (g.f + g.c))
    expect(Number(g.refunded)).toBe(Number(g.credits_refunded))
    expect(['succeeded', 'partial', 'failed', 'cancelled']).toContain(g.status)
  }

  // the ledger reconciles: each balance is the sum of its entries, never negative
  const mismatches = await sql`
    select a.user_id, a.balance, coalesce(sum(e.amount), 0)::bigint as sum
    from credit_accounts a left join ledger_entries e on e.user_id = a.user_id
    group by a.user_id, a.balance having a.balance <> coalesce(sum(e.amount), 0) or a.balance < 0`
  expect([...mismatches]).toEqual([])

  // balances exact: grants that answered 201 and generations that answered 202, once each
  const users = [...new Set(operations.map((o) => o.userId))]
  for (const userId of users) {
    const mine = operations.filter((o) => o.userId === userId)
    const grants = mine.filter((o) => o.kind === 'grant' && o.status === 201)
    const accepted = mine.filter((o) => o.kind === 'generation' && o.status === 202)
    const [acct] = await sql`select balance from credit_accounts where user_id = ${userId}`
    const [counts] = await sql`select
      (select count(*)::int from ledger_entries where user_id = ${userId} and kind = 'grant') as grants,
      (select count(*)::int from generations where user_id = ${userId}) as generations,
      (select coalesce(sum(credits_refunded), 0)::bigint from generations where user_id = ${userId}) as refunded`
    expect({ grants: counts!.grants, generations: counts!.generations }).toEqual({
      grants: grants.length,
      generations: accepted.length,
    })
    const expected =
      grants.reduce((s, o) => s + o.amount, 0) -
      accepted.reduce((s, o) => s + o.amount, 0) +
      Number(counts!.refunded)
    expect(Number(acct?.balance ?? 0)).toBe(expected)
  }
}

/** No 500 of any kind; every 503 says when to retry. */
export function checkResponses(responses: Response_[]) {
  const serverErrors = responses.filter(
    (r) => r.status === 'network' || (r.status >= 500 && r.status !== 503),
  )
  expect(serverErrors).toEqual([])
  const bare = responses.filter((r) => r.status === 503 && !r.retryAfter)
  expect(bare).toEqual([])
  for (const r of responses.filter((r) => r.status === 503)) expect(r.code).toBe('unavailable')
}
