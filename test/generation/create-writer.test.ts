import { afterAll, describe, expect, it } from 'bun:test'
import postgres from 'postgres'
import { claimOwner } from '../../src/actors/repository'
import {
  IdempotencyConflict,
  InsufficientCredits,
  RateLimited,
  StaleEpoch,
  Unavailable,
  ValidationFailed,
} from '../../src/errors'
import { makeCreateWriter, type CreateCommand } from '../../src/generation/create-writer'
import { makeIdempotency } from '../../src/idempotency/idempotency'
import { makeLedgerWriter } from '../../src/ledger/writer'
import { makeLogger } from '../../src/obs/logger'
import { useTestEnv } from '../support/env'
import { waitFor } from '../support/wait'

/**
 * The accept group commit (src/generation/create-writer.ts, sql/0021): several
 * users' creates in one transaction, each user's limits and charge decided
 * under its own lock, the Idempotency-Key record written with the effect, and
 * a create the database refuses failing alone.
 */
const env = await useTestEnv()
const db = (await env.database()).db
const idempotency = makeIdempotency({
  db,
  log: makeLogger({ level: 'silent', pretty: false }),
  sweeps: false,
})
afterAll(() => idempotency.close())

const writer = (limits = { imagesPerHour: 1000, activeGenerations: 100 }, slots = 1) =>
  makeCreateWriter({
    db,
    limits,
    urls: { url: (m) => `http://x.test/${m}` },
    record: idempotency.record,
    committed: () => {},
    group: { slots },
  })

async function fundedUser(credits = 1000) {
  const id = Bun.randomUUIDv7()
  await env.sql`insert into users (id, email, password_hash) values (${id}, ${`${id}@x.test`}, 'x')`
  await makeLedgerWriter(db).apply(id, [
    { kind: 'grant', amount: credits, reason: 'test', key: crypto.randomUUID() },
  ])
  return id
}

function create(prompt = 'a pose', extra: Partial<CreateCommand> = {}): CreateCommand {
  return {
    kind: 'create',
    generationId: Bun.randomUUIDv7(),
    request: { mode: 'text', prompt, variations: 1 },
    items: [{ id: Bun.randomUUIDv7(), key: 'text-v0', poseId: null, variation: 0 }],
    pricePerItem: 30,
    deadlineSeconds: null,
    commandKey: `auto:${crypto.randomUUID()}`,
    ...extra,
  }
}

/** `n` work items of a text generation. */
const items = (n: number) =>
  Array.from({ length: n }, (_, v) => ({
    id: Bun.randomUUIDv7(),
    key: `text-v${v}`,
    poseId: null,
    variation: v,
  }))

/** The transaction ids that wrote these users' generations. */
async function writersOf(users: string[]) {
  const rows = await env.sql`select distinct xmin::text as x from generations
    where user_id = any(${users}::uuid[])`
  return rows.map((r) => r.x as string)
}

async function balanceOf(userId: string) {
  const [row] = await env.sql`select balance::int from credit_accounts where user_id = ${userId}`
  return row!.balance as number
}

describe('the accept group commit', () => {
  it('writes the creates of users queued behind a group in one transaction', async () => {
    const w = writer()
    const users = await Promise.all(Array.from({ length: 6 }, () => fundedUser()))
    // one slot: the first user's create goes alone, the five queued meanwhile go together
    const answers = await Promise.all(users.map((u) => w.create(u, [create()])))
    expect(answers.flat().map((a) => a.ok)).toEqual([true, true, true, true, true, true])
    expect(await writersOf(users.slice(1))).toHaveLength(1)
    expect(await writersOf(users)).toHaveLength(2)
    for (const u of users) expect(await balanceOf(u)).toBe(970)
  })

  it('answers what GET shows, and records the Idempotency-Key with the effect', async () => {
    const w = writer()
    const u = await fundedUser()
    const idem = { key: `k-${crypto.randomUUID()}`, requestHash: 'h1' }
    const c = create('a cat', { idem, commandKey: `idem:${idem.key}` })
    const [answer] = await w.create(u, [c])
    if (!answer!.ok) throw answer!.error
    const body = answer!.value.answer!.body as Record<string, any>
    expect(answer!.value.answer).toMatchObject({ status: 202, replayed: false })
    expect(body).toMatchObject({
      id: c.generationId,
      status: 'queued',
      mode: 'text',
      totalItems: 1,
      creditsCharged: 30,
      creditsRefunded: 0,
      startedAt: null,
      finishedAt: null,
    })
    expect(body.items).toEqual([
      {
        id: c.items[0]!.id,
        key: 'text-v0',
        status: 'queued',
        imageUrl: null,
        thumbnailUrl: null,
        exports: {},
        error: null,
      },
    ])
    const [written] = await env.sql`select g.xmin::text as g, k.xmin::text as k,
        k.state, k.response_status, k.response_body
      from generations g, idempotency_keys k
      where g.id = ${c.generationId} and k.user_id = ${u} and k.key = ${idem.key}`
    expect(written!.g).toBe(written!.k)
    expect(written!.state).toBe('completed')
    expect(written!.response_status).toBe(202)
    expect(written!.response_body).toEqual(body)

    // the same key again: the recorded answer, nothing charged; another request: a conflict
    const [again] = await w.create(u, [create('a cat', { idem, commandKey: `idem:${idem.key}` })])
    const [other] = await w.create(u, [
      create('a dog', { idem: { ...idem, requestHash: 'h2' }, commandKey: `idem:${idem.key}` }),
    ])
    // twice in one run (two instances forwarded it at once): written once, the copy replays it;
    // another request under the same key in the same run is a conflict
    const cow = () =>
      create('a cow', { idem: { key: 'twice', requestHash: 'h' }, commandKey: 'idem:twice' })
    const [first, repeat, otherBody] = await w.create(u, [
      cow(),
      cow(),
      create('a pig', { idem: { key: 'twice', requestHash: 'h3' }, commandKey: 'idem:twice' }),
    ])
    if (!first!.ok) throw first!.error
    expect(repeat).toMatchObject({
      ok: true,
      value: {
        applied: false,
        answer: { status: 202, body: first!.value.answer!.body, replayed: true },
      },
    })
    expect(otherBody!.ok ? undefined : otherBody!.error).toBeInstanceOf(IdempotencyConflict)
    expect(again).toMatchObject({
      ok: true,
      value: { applied: false, answer: { status: 202, body, replayed: true } },
    })
    expect(other!.ok ? undefined : other!.error).toBeInstanceOf(IdempotencyConflict)
    expect(await balanceOf(u)).toBe(940)
    // a command delivered twice (no key): one generation, charged once
    const once = create('a hen')
    const [a, b] = await w.create(u, [once, { ...once }])
    expect([a!.ok, b!.ok]).toEqual([true, true])
    const [{ n }] = (await env.sql`select count(*)::int as n from generations
      where id = ${once.generationId}`) as any
    expect(n).toBe(1)
    expect(await balanceOf(u)).toBe(910)
  })

  it('fails a create the database refuses alone, in the group and in its user’s run', async () => {
    const w = writer()
    const [a, b] = await Promise.all([fundedUser(), fundedUser()])
    const holder = await fundedUser()
    const [, runA, runB] = await Promise.all([
      w.create(holder, [create()]), // holds the one slot while the next group queues
      // U+0000 cannot be stored in jsonb (SQLSTATE 22P05): a value past the edge by a bug
      w.create(a, [create('fine'), create('bad \u0000 prompt'), create('fine too')]),
      w.create(b, [create('neighbour')]),
    ])
    expect(runA!.map((o) => o.ok)).toEqual([true, false, true])
    expect(runA![1]!.ok ? undefined : runA![1]!.error).toBeInstanceOf(ValidationFailed)
    expect(runB!.map((o) => o.ok)).toEqual([true])
    expect(await balanceOf(a)).toBe(1000 - 2 * 30)
    expect(await balanceOf(b)).toBe(970)
  })

  it('counts the creates before it in a user’s limits, and charges nothing for one refused', async () => {
    const w = writer({ imagesPerHour: 1000, activeGenerations: 2 })
    const u = await fundedUser()
    const answers = await w.create(u, [create(), create(), create()])
    expect(answers.map((a) => a.ok)).toEqual([true, true, false])
    expect(answers[2]!.ok ? undefined : answers[2]!.error).toBeInstanceOf(RateLimited)
    expect(await balanceOf(u)).toBe(1000 - 2 * 30)
  })

  it('counts no create refused for its credits in the limits of those after it', async () => {
    const w = writer({ imagesPerHour: 1000, activeGenerations: 1 })
    const u = await fundedUser(30)
    const answers = await w.create(u, [create('eight', { items: items(8) }), create('one')])
    expect(answers[0]!.ok ? undefined : answers[0]!.error).toBeInstanceOf(InsufficientCredits)
    expect(answers[1]!.ok).toBe(true)
    expect(await balanceOf(u)).toBe(0)
  })

  it('says the hour frees when its first image leaves it, also one accepted just before', async () => {
    const w = writer({ imagesPerHour: 10, activeGenerations: 100 })
    const u = await fundedUser()
    const answers = await w.create(u, [
      create('first', { items: items(8) }),
      create('second', { items: items(8) }),
    ])
    expect(answers[0]!.ok).toBe(true)
    const refused = answers[1]!.ok ? undefined : answers[1]!.error
    expect(refused).toBeInstanceOf(RateLimited)
    expect(Number((refused as RateLimited).headers?.['retry-after'])).toBeGreaterThan(3500)
  })

  it('writes the others of a group one member’s deadline ended in the next group', async () => {
    const w = writer()
    const [u0, u1, u2] = await Promise.all([fundedUser(), fundedUser(), fundedUser()])
    // the test holds u0's and u1's account rows: each group waits at its first of them
    const locks = postgres(env.databaseUrl, { max: 2, onnotice: () => {} })
    const holders = [await locks.reserve(), await locks.reserve()]
    const pids: number[] = []
    for (const [i, u] of [u0, u1].entries()) {
      await holders[i]!`begin`
      await holders[i]!`select 1 from credit_accounts where user_id = ${u} for update`
      pids.push(((await holders[i]!`select pg_backend_pid() as pid`) as any)[0].pid)
    }
    const blockedOn = (pid: number) =>
      waitFor(
        async () =>
          (
            await env.sql`select 1 from pg_stat_activity where ${pid}::int = any(pg_blocking_pids(pid))`
          ).length > 0,
        10_000,
        'a group to wait on the test’s row lock',
      )
    try {
      const first = w.create(u0, [create()]) // holds the one slot, waiting on u0
      await blockedOn(pids[0]!)
      const deadline = new AbortController()
      const other = w.create(u1, [create()])
      const late = w.create(u2, [create()], undefined, deadline.signal)
      await holders[0]!`rollback`
      expect((await first)[0]!.ok).toBe(true)
      await blockedOn(pids[1]!) // the group of u1 and u2, in its transaction
      deadline.abort(new Unavailable('past its deadline'))
      expect(
        await late.then(
          () => 'answered',
          (e: Error) => e.message,
        ),
      ).toBe('past its deadline')
      await holders[1]!`rollback`
      expect((await other)[0]!.ok).toBe(true)
    } finally {
      for (const h of holders) {
        await h`rollback`.catch(() => {})
        h.release()
      }
      await locks.end()
    }
    expect([await balanceOf(u1), await balanceOf(u2)]).toEqual([970, 1000])
  })

  it('refuses a stale owner’s creates alone while the others in its group commit', async () => {
    const w = writer()
    const [stale, fresh] = await Promise.all([fundedUser(), fundedUser()])
    const a = await claimOwner(db, stale, 'a', null, 0)
    await claimOwner(db, stale, 'b', 'a', 0) // b took the user over: a's epoch is stale
    const f = await claimOwner(db, fresh, 'a', null, 0)
    const [, refused, accepted] = await Promise.all([
      w.create(await fundedUser(), [create()]), // holds the one slot while the next group queues
      w.create(stale, [create()], a.epoch),
      w.create(fresh, [create()], f.epoch),
    ])
    expect(refused![0]!.ok ? undefined : refused![0]!.error).toBeInstanceOf(StaleEpoch)
    expect(accepted![0]!.ok).toBe(true)
    expect(await balanceOf(stale)).toBe(1000)
    expect(await balanceOf(fresh)).toBe(970)
  })
})
