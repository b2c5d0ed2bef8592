import { describe, expect, it } from 'bun:test'
import type { Event, EventLog } from '../../src/events/event'
import { ZERO_ID } from '../../src/events/ids'
import { writeEvents } from '../../src/events/outbox-repository'
import { makeOutboxRelay } from '../../src/events/outbox-relay'
import { makeRedisKeys } from '../../src/redis/keys'
import type { Instance } from '../../src/server'
import { silentLog, useTestEnv } from '../support/env'
import { client } from '../support/http'
import { waitFor } from '../support/wait'

/**
 * The outbox (DESIGN.md invariant 6): events are rows written in the
 * transaction of their change, relayed to the log by whichever instance
 * gets there, with ids from each user's sequence, so a second relay of an
 * event is refused instead of duplicated.
 */
const env = await useTestEnv()
const inst = await env.instance({ OUTBOX_POLL_MS: '100' })
const api = client(inst)

async function newUser(target: Instance = inst) {
  return (await client(target).register()).user.id
}

function grant(target: Instance, userId: string, amount = 10) {
  return target.credits.apply(userId, {
    kind: 'grant',
    amount,
    reason: 'outbox test',
    key: crypto.randomUUID(),
  })
}

async function outboxRows(userId: string) {
  return env.sql`
    select seq::int, name, data::text as data, sent_at is not null as sent
    from event_outbox where user_id = ${userId} order by seq`
}

async function untilRelayed(userId: string, what = 'the outbox to be relayed') {
  await waitFor(async () => (await outboxRows(userId)).every((r) => r.sent), 5000, what)
}

/** Every event of the user's log, oldest first. */
async function logOf(log: EventLog, userId: string) {
  return (await log.readAfter(userId, ZERO_ID, 1000)).events
}

/** Live events of one user, awaited by count. */
function listen(log: EventLog, userId: string) {
  const got: Event[] = []
  const waiters: { n: number; resolve: () => void }[] = []
  const unsubscribe = log.subscribe(userId, (e) => {
    got.push(e)
    for (const w of waiters.filter((w) => got.length >= w.n)) w.resolve()
  })
  return {
    got,
    unsubscribe,
    async until(n: number, timeoutMs = 5000) {
      if (got.length >= n) return got
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        new Promise<void>((resolve) => waiters.push({ n, resolve })),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`got ${got.length} of ${n} live events`)),
            timeoutMs,
          )
        }),
      ]).finally(() => clearTimeout(timer))
      return got
    },
  }
}

describe('the outbox', () => {
  it('writes one credits.changed per ledger entry in its commit, seqs 1, 2, 3 per user, relayed as ids <seq>-0', async () => {
    const userId = await newUser()
    const live = listen(inst.events, userId)
    // several commands in one actor batch: one ledger_apply, one multi-row outbox insert
    await Promise.all([grant(inst, userId, 5), grant(inst, userId, 7), grant(inst, userId, 11)])
    const rows = await outboxRows(userId)
    expect(rows.map((r) => [r.seq, r.name])).toEqual([
      [1, 'credits.changed'],
      [2, 'credits.changed'],
      [3, 'credits.changed'],
    ])
    expect(rows.map((r) => JSON.parse(r.data).balance)).toEqual([5, 12, 23])
    await live.until(3)
    expect(live.got.map((e) => [e.id, e.data])).toEqual([
      ['1-0', { balance: 5, delta: 5, kind: 'grant' }],
      ['2-0', { balance: 12, delta: 7, kind: 'grant' }],
      ['3-0', { balance: 23, delta: 11, kind: 'grant' }],
    ])
    await untilRelayed(userId)
    live.unsubscribe()
  })

  it('writes no event for a replayed command or a transaction that rolled back', async () => {
    const userId = await newUser()
    const key = crypto.randomUUID()
    const command = { kind: 'grant' as const, amount: 3, reason: 'once', key }
    await inst.credits.apply(userId, command)
    await inst.credits.apply(userId, command)
    // a generation its owner cannot pay for: charge and rows roll back, and its events with them
    const { token } = await api.register()
    const refused = await api.post(
      '/v1/generations',
      { mode: 'text', prompt: 'nothing to pay with', variations: 1 },
      token,
    )
    expect(refused.status).toBe(402)
    expect((await outboxRows(userId)).map((r) => r.seq)).toEqual([1])
  })

  it('refuses an event relayed a second time instead of duplicating it', async () => {
    const userId = await newUser()
    await grant(inst, userId)
    await grant(inst, userId)
    await untilRelayed(userId)
    const before = await logOf(inst.events, userId)
    expect(before.map((e) => e.id)).toEqual(['1-0', '2-0'])
    // as if a relay's commit failed after Redis took the events: they are pending again
    await env.sql`update event_outbox set sent_at = null where user_id = ${userId}`
    await grant(inst, userId)
    await untilRelayed(userId, 'the events to be relayed again')
    const after = await logOf(inst.events, userId)
    expect(after.map((e) => e.id)).toEqual(['1-0', '2-0', '3-0'])
    expect(after.slice(0, 2)).toEqual(before)
    const metrics = await inst.metrics.registry.metrics()
    expect(metrics).toMatch(/outbox_relayed_total\{[^}]*outcome="present"[^}]*\} [1-9]/)
  })

  it('relays a user only under its relay lock: a user held by another relay waits, the others go on', async () => {
    const [held, free] = [await newUser(), await newUser()]
    const locker = await env.sql.reserve()
    try {
      await locker`begin`
      await locker`select pg_advisory_xact_lock(720351400, hashtext(${held}::text))`
      await Promise.all([grant(inst, held), grant(inst, free)])
      await untilRelayed(free, 'the free user to be relayed')
      // several polls (100 ms) have passed over it: the held user's event stays pending
      await waitFor(async () => (await logOf(inst.events, free)).length === 1)
      expect((await outboxRows(held)).map((r) => r.sent)).toEqual([false])
      expect(await logOf(inst.events, held)).toEqual([])
      await locker`commit`
      await untilRelayed(held, 'the held user to be relayed once its lock is released')
      expect((await logOf(inst.events, held)).map((e) => e.id)).toEqual(['1-0'])
    } finally {
      await locker`rollback`.catch(() => {})
      locker.release()
    }
  })

  it('relays what another instance committed, from the poll, with two relays in seq order and no duplicate', async () => {
    const other = await env.instance({ OUTBOX_POLL_MS: '100' })
    const users = await Promise.all([newUser(), newUser(), newUser()])
    // written as a crashed instance leaves them: committed, never relayed, nobody woken
    for (const userId of users)
      await inst.database.db.transaction().execute((trx) =>
        writeEvents(
          trx,
          userId,
          Array.from({ length: 40 }, (_, i) => ({ name: 'credits.changed', data: { i } })),
        ),
      )
    // and more from both instances at once
    await Promise.all(
      users.flatMap((u) => Array.from({ length: 10 }, (_, i) => grant(i % 2 ? inst : other, u))),
    )
    for (const userId of users) {
      await untilRelayed(userId)
      const ids = (await logOf(other.events, userId)).map((e) => e.id)
      expect(ids).toEqual(Array.from({ length: 50 }, (_, i) => `${i + 1}-0`))
    }
  })

  it('retries a failed relay with backoff and relays once the log takes the events again', async () => {
    const failures = async () =>
      Number(
        (await inst.metrics.registry.metrics()).match(
          /^outbox_relay_failures_total(?:\{[^}]*\})? (\d+)/m,
        )?.[1] ?? 0,
      )
    const userId = await newUser()
    const key = makeRedisKeys(env.redisPrefix).userEvents(userId)
    // not a stream: every append for this user fails (WRONGTYPE), for real
    await inst.redis!.set(key, 'not a stream')
    const before = await failures()
    await grant(inst, userId)
    await waitFor(async () => (await failures()) > before, 5000, 'the relay to fail')
    // a rate over a window, so a fixed wait: retries doubling from 50 ms to 1 s make ~5 in
    // 2 s; retrying at every 100 ms poll instead (no backoff) would make ~20, none at all 0
    const first = await failures()
    await Bun.sleep(2000)
    const retries = (await failures()) - first
    expect(retries).toBeGreaterThanOrEqual(2)
    expect(retries).toBeLessThanOrEqual(8)
    expect((await outboxRows(userId)).map((r) => r.sent)).toEqual([false])
    await inst.redis!.del(key)
    await untilRelayed(userId, 'the relay to succeed after the key was fixed')
    expect((await logOf(inst.events, userId)).map((e) => e.id)).toEqual(['1-0'])
  })

  it('prunes sent rows after the retention, never pending ones', async () => {
    const [relayed, pending] = [await newUser(), await newUser()]
    const relay = makeOutboxRelay({
      db: inst.database.db,
      events: inst.events,
      log: silentLog,
      retentionSeconds: 0,
      pruneEveryMs: 0,
      pollMs: 60_000,
    })
    // the pending user's relay lock is held: its row stays unsent throughout
    const locker = await env.sql.reserve()
    try {
      await locker`begin`
      await locker`select pg_advisory_xact_lock(720351400, hashtext(${pending}::text))`
      await grant(inst, relayed)
      await grant(inst, pending)
      await untilRelayed(relayed)
      await env.sql`update event_outbox set sent_at = now() - interval '1 second' where user_id = ${relayed}`
      relay.wake()
      await waitFor(async () => (await outboxRows(relayed)).length === 0, 5000, 'the prune')
      expect((await outboxRows(pending)).map((r) => r.sent)).toEqual([false])
    } finally {
      await locker`rollback`.catch(() => {})
      locker.release()
      await relay.close()
    }
  })
})

describe('the outbox in embedded mode (PGlite, in-memory log)', () => {
  it('relays with the same ids and refuses a second relay the same way', async () => {
    const embedded = await env.instance({
      DATABASE_URL: undefined,
      REDIS_URL: undefined,
      MIGRATE_ON_START: 'true',
      DATA_DIR: `${env.dataDir}/embedded-outbox`,
      OUTBOX_POLL_MS: '100',
      // embedded mode grants 1,000 at signup by default: that would be event 1-0
      SIGNUP_CREDITS: '0',
    })
    const userId = await newUser(embedded)
    const live = listen(embedded.events, userId)
    await grant(embedded, userId, 4)
    await grant(embedded, userId, 6)
    await live.until(2)
    expect(live.got.map((e) => [e.id, e.data])).toEqual([
      ['1-0', { balance: 4, delta: 4, kind: 'grant' }],
      ['2-0', { balance: 10, delta: 6, kind: 'grant' }],
    ])
    const pending = () =>
      embedded.database.db
        .selectFrom('event_outbox')
        .select('seq')
        .where('user_id', '=', userId)
        .where('sent_at', 'is', null)
        .execute()
    await waitFor(async () => (await pending()).length === 0, 5000, 'the embedded relay')
    await embedded.database.db
      .updateTable('event_outbox')
      .set({ sent_at: null })
      .where('user_id', '=', userId)
      .execute()
    await grant(embedded, userId, 1)
    await live.until(3)
    await waitFor(async () => (await pending()).length === 0, 5000, 'the second relay')
    expect((await logOf(embedded.events, userId)).map((e) => e.id)).toEqual(['1-0', '2-0', '3-0'])
    expect(live.got.map((e) => e.id)).toEqual(['1-0', '2-0', '3-0'])
    live.unsubscribe()
    // PGlite boots and migrates in a few seconds on a busy machine
  }, 60_000)
})
