import { describe, expect, it } from 'bun:test'
import { useTestEnv } from '../support/env'

/**
 * ledger_apply itself (sql/0022), below the actor and the writer: what one
 * call answers for a batch that mixes keys the user already has with new
 * ones, and what it reads to find them.
 */
const env = await useTestEnv()

type Command = { kind: string; amount: number; key: string; reason?: string }
type Result = {
  ok: boolean
  replayed?: boolean
  code?: string
  required?: number
  available?: number
  entry?: Record<string, unknown>
}

async function newUser() {
  const id = Bun.randomUUIDv7()
  await env.sql`insert into users (id, email, password_hash, role)
    values (${id}, ${`${id}@apply.test`}, 'x', 'user')`
  return id
}

const payload = (commands: Command[]) =>
  JSON.stringify(commands.map((c) => ({ reason: 'test', ...c, id: Bun.randomUUIDv7() })))

async function apply(userId: string, commands: Command[], q = env.sql) {
  const [row] =
    await q`select ledger_apply(${userId}::uuid, ${payload(commands)}::text::jsonb) as r`
  return row!.r as { balance: number; results: Result[] }
}

describe('ledger_apply', () => {
  it('replays a known key, refuses a known key with another amount or kind, and applies the new ones of the same batch', async () => {
    const user = await newUser()
    const setup = await apply(user, [
      { kind: 'grant', amount: 1000, key: 'g1' },
      { kind: 'charge', amount: 100, key: 'c1' },
      { kind: 'charge', amount: 50, key: 'c2' },
      { kind: 'charge', amount: 30, key: 'c3' },
    ])
    expect(setup.balance).toBe(820)
    const first = setup.results[1]!.entry!

    const { balance, results } = await apply(user, [
      { kind: 'charge', amount: 200, key: 'n1' },
      { kind: 'charge', amount: 100, key: 'c1' },
      { kind: 'charge', amount: 60, key: 'c2' },
      { kind: 'grant', amount: 30, key: 'c3' },
      { kind: 'charge', amount: 10_000, key: 'n2' },
      { kind: 'charge', amount: 1, key: 'n3' },
    ])
    expect(results).toHaveLength(6)
    expect(results[0]).toMatchObject({
      ok: true,
      entry: { seq: 5, amount: -200, balance_after: 620 },
    })
    expect(results[0]!.replayed).toBeUndefined()
    // the replay is the first entry as it was answered, field for field
    expect(results[1]).toEqual({ ok: true, replayed: true, entry: first })
    expect(results[2]).toEqual({ ok: false, code: 'idempotency_conflict' })
    expect(results[3]).toEqual({ ok: false, code: 'idempotency_conflict' })
    expect(results[4]).toEqual({
      ok: false,
      code: 'insufficient_credits',
      required: 10_000,
      available: 620,
    })
    expect(results[5]).toMatchObject({
      ok: true,
      entry: { seq: 6, amount: -1, balance_after: 619 },
    })
    expect(balance).toBe(619)

    const entries = await env.sql`select idempotency_key as key, amount::int from ledger_entries
      where user_id = ${user} order by seq`
    expect(entries.map((e) => [e.key, e.amount])).toEqual([
      ['g1', 1000],
      ['c1', -100],
      ['c2', -50],
      ['c3', -30],
      ['n1', -200],
      ['n3', -1],
    ])
    const [account] = await env.sql`select balance::int, last_seq::int from credit_accounts
      where user_id = ${user}`
    expect(account).toEqual({ balance: 619, last_seq: 6 })
    // one credits.changed per entry written, none for a replay or a refusal
    const events = await env.sql`select (data ->> 'delta')::int as delta from event_outbox
      where user_id = ${user} order by seq`
    expect(events.map((e) => e.delta)).toEqual([1000, -100, -50, -30, -200, -1])
  })

  it("finds a batch's known keys by probing the index, not by reading the user's history", async () => {
    const user = await newUser()
    for (let i = 0; i < 6; i++)
      await apply(
        user,
        Array.from({ length: 500 }, (_, j) => ({
          kind: 'grant',
          amount: 1,
          key: `h${i * 500 + j}`,
        })),
      )
    // the statistics of a table that is mostly this user's history: with them `in (select …)`
    // was a hash semi join over all 3,000 entries (3,006 rows read, seen before sql/0022)
    await env.sql`analyze ledger_entries`
    expect(await rowsRead(user, 'auto')).toBeLessThan(50)
    // and those of many users with a few entries each, under a generic plan (what plpgsql
    // settles on after five calls): its estimate is the average user's, and `= any (array(…))`
    // was a filter on all of this user's entries (3,002 rows read, seen with it)
    const others = await Promise.all(Array.from({ length: 400 }, newUser))
    await env.sql`select ledger_apply_many(${JSON.stringify(
      others.map((userId) => ({
        userId,
        commands: JSON.parse(payload([{ kind: 'grant', amount: 1, key: 'o' }])),
      })),
    )}::text::jsonb)`
    await env.sql`analyze ledger_entries`
    expect(await rowsRead(user, 'force_generic_plan')).toBeLessThan(50)
  })
})

describe('ledger_apply_many', () => {
  const many = async (batches: { userId: string; epoch?: number; commands: Command[] }[]) => {
    const body = batches.map((b) => ({ ...b, commands: JSON.parse(payload(b.commands)) }))
    const [row] = await env.sql`select ledger_apply_many${env.sql.unsafe(
      batches.some((b) => b.epoch !== undefined) ? '_fenced' : '',
    )}(${JSON.stringify(body)}::text::jsonb) as r`
    return row!.r as Record<string, { balance: number; results: Result[] } | { fenced: true }>
  }

  it("applies each user's batch in its order, under the userId as sent, with that user's next event seqs", async () => {
    const [a, b, c] = [await newUser(), await newUser(), await newUser()]
    await apply(a, [{ kind: 'grant', amount: 100, key: 'a0' }])
    await apply(b, [{ kind: 'grant', amount: 10, key: 'b0' }])
    // c has no account yet: its first entry opens it
    const answers = await many([
      {
        userId: a,
        commands: [
          { kind: 'charge', amount: 60, key: 'a1' },
          { kind: 'charge', amount: 60, key: 'a2' },
          { kind: 'charge', amount: 40, key: 'a3' },
        ],
      },
      { userId: b.toUpperCase(), commands: [{ kind: 'charge', amount: 11, key: 'b1' }] },
      { userId: c, commands: [{ kind: 'grant', amount: 5, key: 'c1' }] },
    ])
    expect(Object.keys(answers).sort()).toEqual([a, b.toUpperCase(), c].sort())
    expect(answers[a]).toMatchObject({
      balance: 0,
      results: [
        { ok: true, entry: { seq: 2, balance_after: 40 } },
        { ok: false, code: 'insufficient_credits', required: 60, available: 40 },
        { ok: true, entry: { seq: 3, balance_after: 0 } },
      ],
    })
    expect(answers[b.toUpperCase()]).toEqual({
      balance: 10,
      results: [{ ok: false, code: 'insufficient_credits', required: 11, available: 10 }],
    })
    expect(answers[c]).toMatchObject({ balance: 5, results: [{ ok: true, entry: { seq: 1 } }] })

    const events = await env.sql`select user_id, seq::int, data::text from event_outbox
      where user_id in (${a}, ${b}, ${c}) order by user_id, seq`
    const of = (u: string) => events.filter((e) => e.user_id === u).map((e) => [e.seq, e.data])
    // the data as written by json_build_object, which the relay sends as it is
    expect(of(a)).toEqual([
      [1, '{"balance" : 100, "delta" : 100, "kind" : "grant"}'],
      [2, '{"balance" : 40, "delta" : -60, "kind" : "charge"}'],
      [3, '{"balance" : 0, "delta" : -40, "kind" : "charge"}'],
    ])
    expect(of(b)).toEqual([[1, '{"balance" : 10, "delta" : 10, "kind" : "grant"}']])
    expect(of(c)).toEqual([[1, '{"balance" : 5, "delta" : 5, "kind" : "grant"}']])
    const accounts = await env.sql`select user_id, balance::int, last_seq::int from credit_accounts
      where user_id in (${a}, ${b}, ${c}) order by user_id`
    expect(Object.fromEntries(accounts.map((r) => [r.user_id, [r.balance, r.last_seq]]))).toEqual({
      [a]: [0, 3],
      [b]: [10, 1],
      [c]: [5, 1],
    })
  })

  it('skips a batch whose epoch is stale, alone, in a fenced group', async () => {
    const [stale, current] = [await newUser(), await newUser()]
    await env.sql`insert into actor_owners (user_id, epoch, owner)
      values (${stale}, 2, 'other'), (${current}, 1, 'me')`
    const answers = await many([
      { userId: stale, epoch: 1, commands: [{ kind: 'grant', amount: 3, key: 's' }] },
      { userId: current, epoch: 1, commands: [{ kind: 'grant', amount: 4, key: 'c' }] },
    ])
    expect(answers[stale]).toEqual({ fenced: true })
    expect(answers[current]).toMatchObject({ balance: 4, results: [{ ok: true }] })
    const [written] = await env.sql`select count(*)::int as n from ledger_entries
      where user_id = ${stale}`
    expect(written!.n).toBe(0)
  })

  it('refuses a group that holds one user twice, writing nothing', async () => {
    const user = await newUser()
    const twice = many([
      { userId: user, commands: [{ kind: 'grant', amount: 1, key: 'x' }] },
      { userId: user, commands: [{ kind: 'grant', amount: 2, key: 'y' }] },
    ])
    // 22023: a request fault, so the writer retries each batch on its own (src/ledger/writer.ts)
    await expect(twice).rejects.toMatchObject({ code: '22023' })
    const [written] = await env.sql`select count(*)::int as n from ledger_entries
      where user_id = ${user}`
    expect(written!.n).toBe(0)
  })
})

/** Rows of ledger_entries one ledger_apply reads for 2 known and 2 new keys of `user` (history h0…). */
async function rowsRead(user: string, planCacheMode: 'auto' | 'force_generic_plan') {
  return env.sql.begin(async (trx) => {
    await trx`select set_config('plan_cache_mode', ${planCacheMode}, true)`
    // rows this backend read and has not flushed yet, earlier transactions' included:
    // hence a difference around the call
    const reads = async () => {
      const [row] =
        await trx`select coalesce(seq_tup_read, 0)::int + coalesce(idx_tup_fetch, 0)::int as n
        from pg_stat_xact_user_tables where relname = 'ledger_entries'`
      return (row?.n ?? 0) as number
    }
    const before = await reads()
    const { results } = await apply(
      user,
      [
        { kind: 'grant', amount: 1, key: 'h7' },
        { kind: 'charge', amount: 1, key: `fresh-${Math.random()}` },
        { kind: 'grant', amount: 2, key: 'h2999' },
        { kind: 'charge', amount: 1, key: `fresh-${Math.random()}` },
      ],
      trx as unknown as typeof env.sql,
    )
    expect(results.map((r) => r.replayed ?? r.code ?? 'new')).toEqual([
      true,
      'new',
      'idempotency_conflict',
      'new',
    ])
    return (await reads()) - before
  })
}
