import { describe, expect, it } from 'bun:test'
import { claimOwner, readOwner, releaseAll } from '../../src/actors/repository'
import { toCommandError } from '../../src/db/errors'
import { StaleEpoch } from '../../src/errors'
import { writeEvents } from '../../src/events/outbox-repository'
import { makeCreateWriter } from '../../src/generation/create-writer'
import { generationHandler } from '../../src/generation/commands'
import { fenceAccount, lockAccount } from '../../src/ledger/repository'
import { applyLedgerBatch } from '../../src/ledger/service'
import { makeLedgerWriter } from '../../src/ledger/writer'
import { useTestEnv } from '../support/env'
import { waitFor } from '../support/wait'

/**
 * Epoch fencing in SQL (sql/0020_actor_owners.sql, DESIGN.md invariant 2):
 * a claim raises the epoch under the account row lock, and every actor write
 * checks its epoch under that same lock, so an owner that lost its claim
 * (paused, partitioned) writes nothing after the new owner claimed.
 */
const env = await useTestEnv()
const db = (await env.database()).db

async function newUser() {
  const id = Bun.randomUUIDv7()
  await env.sql`insert into users (id, email, password_hash) values (${id}, ${`${id}@x.test`}, 'x')`
  return id
}

const grant = (amount: number) => ({
  kind: 'grant' as const,
  amount,
  reason: 'fencing test',
  key: crypto.randomUUID(),
})

async function balanceOf(userId: string) {
  const [row] = await env.sql`select balance::int from credit_accounts where user_id = ${userId}`
  return row?.balance ?? 0
}

async function entries(userId: string) {
  const [row] =
    await env.sql`select count(*)::int as n from ledger_entries where user_id = ${userId}`
  return row!.n as number
}

describe('actor ownership claims', () => {
  it('claims once, keeps the epoch for the same owner, and raises it only over a dead owner', async () => {
    const u = await newUser()
    expect(await readOwner(db, u)).toBeUndefined()
    const first = await claimOwner(db, u, 'a', null, 0)
    expect({ owner: first.owner, epoch: first.epoch }).toEqual({ owner: 'a', epoch: 1 })
    expect((await claimOwner(db, u, 'a', null, 0)).epoch).toBe(1)
    // b may not take a live owner's user: it gets the record back and forwards to a
    const refused = await claimOwner(db, u, 'b', null, 0)
    expect({ owner: refused.owner, epoch: refused.epoch }).toEqual({ owner: 'a', epoch: 1 })
    // nor name the wrong owner dead
    expect((await claimOwner(db, u, 'b', 'c', 0)).owner).toBe('a')
    const taken = await claimOwner(db, u, 'b', 'a', 0)
    expect({ owner: taken.owner, epoch: taken.epoch }).toEqual({ owner: 'b', epoch: 2 })
  })

  it('refuses a takeover within the lease of a fresh claim', async () => {
    const u = await newUser()
    await claimOwner(db, u, 'a', null, 60_000)
    expect((await claimOwner(db, u, 'b', 'a', 60_000)).owner).toBe('a')
  })

  it('a released user is claimed by the next instance with a higher epoch', async () => {
    const u = await newUser()
    await claimOwner(db, u, 'drainer', null, 0)
    expect(await releaseAll(db, 'drainer')).toContain(u)
    expect((await readOwner(db, u))!.owner).toBeNull()
    const next = await claimOwner(db, u, 'b', null, 0)
    expect({ owner: next.owner, epoch: next.epoch }).toEqual({ owner: 'b', epoch: 2 })
  })
})

describe('epoch fencing of actor writes', () => {
  it('refuses a stale owner’s ledger batch and writes nothing; the current owner’s applies', async () => {
    const u = await newUser()
    const writer = makeLedgerWriter(db)
    const a = await claimOwner(db, u, 'a', null, 0)
    await writer.apply(u, [grant(10)], a.epoch)
    const b = await claimOwner(db, u, 'b', 'a', 0)
    const stale = await writer.apply(u, [grant(1000)], a.epoch).catch((e: unknown) => e)
    expect(stale).toBeInstanceOf(StaleEpoch)
    expect(await balanceOf(u)).toBe(10)
    await writer.apply(u, [grant(5)], b.epoch)
    expect(await balanceOf(u)).toBe(15)
    expect(await entries(u)).toBe(2)
  })

  it('refuses a stale batch alone inside a group commit: the other users’ batches commit', async () => {
    const [stale, fresh1, fresh2] = [await newUser(), await newUser(), await newUser()]
    const a = await claimOwner(db, stale, 'a', null, 0)
    await claimOwner(db, stale, 'b', 'a', 0)
    const e1 = (await claimOwner(db, fresh1, 'a', null, 0)).epoch
    const e2 = (await claimOwner(db, fresh2, 'a', null, 0)).epoch
    // one slot: the first call goes alone, the three queued behind it share one commit
    const writer = makeLedgerWriter(db, { slots: 1 })
    const warm = writer.apply(fresh1, [grant(1)], e1)
    const results = await Promise.allSettled([
      writer.apply(stale, [grant(100)], a.epoch),
      writer.apply(fresh1, [grant(2)], e1),
      writer.apply(fresh2, [grant(3)], e2),
    ])
    await warm
    expect(results[0]!.status).toBe('rejected')
    expect((results[0] as PromiseRejectedResult).reason).toBeInstanceOf(StaleEpoch)
    expect(results.slice(1).map((r) => r.status)).toEqual(['fulfilled', 'fulfilled'])
    expect([await balanceOf(stale), await balanceOf(fresh1), await balanceOf(fresh2)]).toEqual([
      0, 3, 3,
    ])
  })

  it('refuses a stale owner’s generation command before it charges, creates or writes events', async () => {
    const u = await newUser()
    const a = await claimOwner(db, u, 'a', null, 0)
    await makeLedgerWriter(db).apply(u, [grant(500)], a.epoch)
    const handle = generationHandler({
      db,
      ledger: { lock: lockAccount, fence: fenceAccount, apply: applyLedgerBatch },
      outbox: { write: writeEvents, committed: () => {} },
      urls: { url: () => 'http://x.test/m' },
      creates: makeCreateWriter({
        db,
        limits: { imagesPerHour: 1000, activeGenerations: 10 },
        urls: { url: () => 'http://x.test/m' },
        record: async () => {},
        committed: () => {},
      }),
    })
    const start = (generationId: string) => ({
      type: 'generation' as const,
      command: {
        kind: 'create' as const,
        generationId,
        request: { mode: 'text' as const, prompt: 'a pose', variations: 1 },
        items: [{ id: Bun.randomUUIDv7(), key: 'v0', poseId: null, variation: 0 }],
        pricePerItem: 30,
        deadlineSeconds: null,
        commandKey: crypto.randomUUID(),
      },
    })
    const [events] = await env.sql`select count(*)::int as n from event_outbox where user_id = ${u}`
    const b = await claimOwner(db, u, 'b', 'a', 0)
    const [refused] = await handle(u, [start(Bun.randomUUIDv7())], { epoch: a.epoch })
    expect(refused!.ok).toBe(false)
    expect((refused as { error: Error }).error).toBeInstanceOf(StaleEpoch)
    // a command that changes no money is fenced too (its events would be out of order)
    const [cancel] = await handle(
      u,
      [
        {
          type: 'generation',
          command: { kind: 'cancel', generationId: Bun.randomUUIDv7(), reason: 'user' },
        },
      ],
      { epoch: a.epoch },
    )
    expect((cancel as { error: Error }).error).toBeInstanceOf(StaleEpoch)
    const [gens] = await env.sql`select count(*)::int as n from generations where user_id = ${u}`
    expect(gens!.n).toBe(0)
    expect(await balanceOf(u)).toBe(500)
    const [after] = await env.sql`select count(*)::int as n from event_outbox where user_id = ${u}`
    expect(after!.n).toBe(events!.n)
    const [applied] = await handle(u, [start(Bun.randomUUIDv7())], { epoch: b.epoch })
    expect(applied!.ok).toBe(true)
    expect(await balanceOf(u)).toBe(470)
  })

  it('a claim waits for the old owner’s transaction in flight, which commits first', async () => {
    const u = await newUser()
    const a = await claimOwner(db, u, 'a', null, 0)
    const held = Promise.withResolvers<void>()
    const entered = Promise.withResolvers<void>()
    // the old owner's batch passed its fence and has not committed yet
    const inflight = env.sql.begin(async (tx) => {
      await tx`select ledger_apply(${u}::uuid, ${JSON.stringify([{ ...grant(7), id: Bun.randomUUIDv7() }])}::text::jsonb, ${a.epoch}::bigint)`
      entered.resolve()
      await held.promise
    })
    await entered.promise
    const claim = claimOwner(db, u, 'b', 'a', 0)
    // the claim's backend waits on the account row lock (an event we can see, not a sleep)
    await waitFor(
      async () =>
        (
          await env.sql`select 1 from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock'
              and query like '%actor_claim%'`
        ).length > 0,
      5000,
      'the claim to wait on the account lock',
    )
    held.resolve()
    await inflight
    const b = await claim
    expect(b.epoch).toBe(a.epoch + 1)
    expect(await balanceOf(u)).toBe(7)
    // and from now on the old owner's writes are refused
    const late = await makeLedgerWriter(db)
      .apply(u, [grant(1)], a.epoch)
      .catch((e: unknown) => e)
    expect(late).toBeInstanceOf(StaleEpoch)
  })

  it('maps SQLSTATE AF001 to StaleEpoch, a 503 with Retry-After', async () => {
    const u = await newUser()
    await claimOwner(db, u, 'a', null, 0)
    const error = await db
      .transaction()
      .execute((trx) => fenceAccount(trx, u, 99))
      .catch(toCommandError)
    expect(error).toBeInstanceOf(StaleEpoch)
    expect((error as StaleEpoch).status).toBe(503)
    expect((error as StaleEpoch).headers['retry-after']).toBe('1')
  })
})
