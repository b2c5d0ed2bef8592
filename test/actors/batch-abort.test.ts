import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import postgres from 'postgres'
import { makeActorSystem, type Exchange } from '../../src/actors/actor-system'
import { dispatchByType } from '../../src/actors/dispatch'
import { makeDatabase, type Database } from '../../src/db/database'
import { AppError } from '../../src/errors'
import { ledgerHandler, makeCredits, type LedgerMessage } from '../../src/ledger/credits'
import type { LedgerResult } from '../../src/ledger/commands'
import { makeLedgerWriter } from '../../src/ledger/writer'
import { silentLog, useTestEnv } from '../support/env'
import { client } from '../support/http'
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy'
import { waitFor } from '../support/wait'

/**
 * A batch failed at its deadline never commits afterwards (issue 10): the
 * user actor's ledger path against a real Postgres, reached through the
 * fault proxy, with the batch stuck on a row lock (before COMMIT) and inside
 * COMMIT (a deferred trigger that waits on an advisory lock the test holds).
 * Each command is answered with what really happened: 503 and nothing
 * committed, or success when the COMMIT did go through.
 */
const env = await useTestEnv()
const u = new URL(env.databaseUrl)
const APP = 'atelier:batch-abort'
const GATE = 7_203_514_101
const DEADLINE_MS = 600
let proxy!: FaultProxy
let database!: Database
/** A second session of the test's own, to hold locks the batch needs. */
const holder = postgres(env.databaseUrl, { max: 1, onnotice: () => {} })

beforeAll(async () => {
  proxy = await startFaultProxy({ host: u.hostname, port: Number(u.port || 5432) })
  database = await makeDatabase({
    url: proxy.url(env.databaseUrl),
    dataDir: '',
    poolMax: 4,
    statementTimeoutMs: 30_000,
    // the batch deadline, not the database's own timeouts, must be what ends these batches
    lockTimeoutMs: 30_000,
    connectTimeoutMs: 1000,
    settleMs: 10_000,
    applicationName: APP,
  })
  // COMMIT of a transaction that inserted a ledger entry waits for GATE (held exclusively by a test)
  await env.sql.unsafe(`
    create function test_commit_gate() returns trigger language plpgsql as $$
    begin
      perform pg_advisory_lock_shared(${GATE});
      perform pg_advisory_unlock_shared(${GATE});
      return null;
    end $$;
    create constraint trigger test_commit_gate after insert on ledger_entries
      deferrable initially deferred for each row execute function test_commit_gate();`)
})

afterAll(async () => {
  await database?.close()
  await proxy?.close()
  await holder.end()
})

function userActors(batchTimeoutMs = DEADLINE_MS) {
  const actors = makeActorSystem<Exchange<LedgerMessage, LedgerResult>>({
    name: 'batch_abort_probe',
    handle: dispatchByType<LedgerMessage, LedgerResult>({
      ledger: ledgerHandler(makeLedgerWriter(database.db), () => {}),
    }),
    log: silentLog,
    batchTimeoutMs,
  })
  return { actors, credits: makeCredits(actors.ask) }
}

async function newUser(balance: number) {
  const id = Bun.randomUUIDv7()
  await env.sql`insert into users (id, email, password_hash, role)
    values (${id}, ${`${id}@abort.test`}, 'x', 'user')`
  await env.sql`insert into credit_accounts (user_id, balance, last_seq) values (${id}, ${balance}, 0)`
  return id
}

const grant = (key: string, amount = 5) => ({
  kind: 'grant' as const,
  amount,
  reason: 'batch abort test',
  key,
})

async function answer<T>(work: Promise<T>) {
  const t0 = performance.now()
  const outcome = await work.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  )
  return { ...outcome, ms: performance.now() - t0 }
}

async function entries(userId: string) {
  return env.sql`select idempotency_key, amount from ledger_entries where user_id = ${userId}`
}

async function balance(userId: string) {
  const [row] = await env.sql`select balance from credit_accounts where user_id = ${userId}`
  return Number(row!.balance)
}

/** No session of the actor's pool is inside a transaction any more (each ended one way or the other). */
function noOpenTransaction() {
  return waitFor(
    async () =>
      (
        await env.sql`select 1 from pg_stat_activity
          where application_name = ${APP} and xact_start is not null`
      ).length === 0,
    10_000,
    'the stuck batch to leave the database',
  )
}

/** Resolves once a session of the actor's pool is waiting for `locktype` (the batch is stuck). */
function stuckOn(locktype: 'transactionid' | 'tuple' | 'advisory') {
  return waitFor(
    async () =>
      (
        await env.sql`select 1 from pg_locks l join pg_stat_activity a using (pid)
          where a.application_name = ${APP} and not l.granted and l.locktype = ${locktype}`
      ).length > 0,
    5000,
    `the batch to wait on a ${locktype} lock`,
  )
}

function expect503(outcome: { ok: boolean; error?: unknown }) {
  expect(outcome.ok).toBe(false)
  expect(outcome.error).toBeInstanceOf(AppError)
  expect((outcome.error as AppError).status).toBe(503)
}

describe('an actor batch past its deadline', () => {
  it('stuck on a row lock before COMMIT: 503 at the deadline, and it never commits after', async () => {
    const { actors, credits } = userActors()
    const userId = await newUser(100)
    const locked = Promise.withResolvers<void>()
    const release = Promise.withResolvers<void>()
    // the test holds the user's account row, as a frozen transaction elsewhere would
    const holding = holder.begin(async (tx) => {
      await tx`select 1 from credit_accounts where user_id = ${userId} for update`
      locked.resolve()
      await release.promise
    })
    try {
      await locked.promise
      const pending = answer(credits.apply(userId, grant('row-lock-1')))
      await stuckOn('transactionid')
      const first = await pending
      expect503(first)
      expect(first.ms).toBeLessThan(DEADLINE_MS + 1500)
    } finally {
      release.resolve()
      await holding
    }
    // the lock is gone: a batch still alive would take it now and commit; it is not
    await noOpenTransaction()
    expect((await entries(userId)).length).toBe(0)
    expect(await balance(userId)).toBe(100)
    // a retry without an Idempotency-Key (a new key) applies once
    await credits.apply(userId, grant('row-lock-retry'))
    expect((await entries(userId)).map((e) => e.idempotency_key)).toEqual(['row-lock-retry'])
    expect(await balance(userId)).toBe(105)
    await actors.close()
  })

  it('stuck inside COMMIT: the commit is ended and settled as rolled back, 503, nothing committed', async () => {
    const { actors, credits } = userActors()
    const userId = await newUser(100)
    const gate = await holder.reserve()
    await gate`select pg_advisory_lock(${GATE})`
    let first
    try {
      const pending = answer(credits.apply(userId, grant('commit-stall-1')))
      await stuckOn('advisory')
      first = await pending
    } finally {
      await gate`select pg_advisory_unlock(${GATE})`
      gate.release()
    }
    expect503(first)
    // the settling ended the backend inside its COMMIT (pg_terminate_backend), then read its fate
    expect(first.ms).toBeLessThan(DEADLINE_MS + 3000)
    await noOpenTransaction()
    expect((await entries(userId)).length).toBe(0)
    expect(await balance(userId)).toBe(100)
    await actors.close()
  })

  it('COMMIT done but its answer stalled: settled once Postgres answers again, and answered as applied', async () => {
    // long enough for the test to stall the proxy and open the gate before it passes
    const { actors, credits } = userActors(2500)
    const userId = await newUser(100)
    const gate = await holder.reserve()
    await gate`select pg_advisory_lock(${GATE})`
    let first
    try {
      const pending = answer(credits.apply(userId, grant('commit-answer-lost')))
      await stuckOn('advisory')
      // from here nothing reaches the instance: the COMMIT goes through, its answer is held
      proxy.stall()
      const accepted = proxy.accepted
      await gate`select pg_advisory_unlock(${GATE})`
      await waitFor(
        async () => (await entries(userId)).length === 1,
        5000,
        'the commit to go through',
      )
      // the deadline passes; the settling opens a connection of its own, which the stall holds
      await waitFor(() => proxy.accepted > accepted, 5000, 'the settling to try to connect')
      proxy.heal()
      first = await pending
    } finally {
      proxy.heal()
      gate.release()
    }
    expect(first.ok).toBe(true)
    const value = first.ok ? first.value : undefined
    expect(value?.replayed).toBe(false)
    expect(value?.balance).toBe(105)
    expect((await entries(userId)).map((e) => e.idempotency_key)).toEqual(['commit-answer-lost'])
    expect(await balance(userId)).toBe(105)
    await actors.close()
  })
})

describe('a request whose actor batch passes its deadline, through the app', () => {
  it('a generation and a grant without Idempotency-Key: 503, nothing of them committed, a retry applies once', async () => {
    const inst = await env.instance({
      ADMIN_EMAILS: 'abort-admin@example.com',
      RENDER_CONCURRENCY: '0',
      ACTOR_BATCH_TIMEOUT_MS: String(DEADLINE_MS),
      // only the batch deadline may end these transactions
      DB_LOCK_TIMEOUT_MS: '60000',
      DB_STATEMENT_TIMEOUT_MS: '60000',
    })
    const api = client(inst)
    const admin = await api.register('abort-admin@example.com')
    const user = await api.register()
    const grant = (amount: number) =>
      api.post(
        '/v1/admin/credits/grants',
        { userId: user.user.id, amount, reason: 't' },
        admin.token,
      )
    expect((await grant(100)).status).toBe(201)
    const body = { mode: 'text', prompt: 'a cat', variations: 1 }
    const locked = Promise.withResolvers<void>()
    const release = Promise.withResolvers<void>()
    const holding = holder.begin(async (tx) => {
      await tx`select 1 from credit_accounts where user_id = ${user.user.id} for update`
      locked.resolve()
      await release.promise
    })
    try {
      await locked.promise
      const [generation, granted] = await Promise.all([
        api.post('/v1/generations', body, user.token),
        grant(7),
      ])
      for (const res of [generation, granted]) {
        expect(res.status).toBe(503)
        expect(res.json.error.code).toBe('unavailable')
        expect(res.headers.get('retry-after')).not.toBeNull()
      }
    } finally {
      release.resolve()
      await holding
    }
    await waitFor(
      async () =>
        (
          await env.sql`select 1 from pg_stat_activity
            where datname = current_database() and xact_start is not null
              and pid <> pg_backend_pid() and application_name like 'atelier:%'`
        ).length === 0,
      10_000,
      'the stuck batches to leave the database',
    )
    const counts = async () => {
      const [row] = await env.sql`select
        (select count(*)::int from generations where user_id = ${user.user.id}) as generations,
        (select count(*)::int from ledger_entries where user_id = ${user.user.id}) as entries,
        (select balance from credit_accounts where user_id = ${user.user.id}) as balance`
      return { generations: row!.generations, entries: row!.entries, balance: Number(row!.balance) }
    }
    expect(await counts()).toEqual({ generations: 0, entries: 1, balance: 100 })
    // the retries, again without a key, apply once each
    expect((await api.post('/v1/generations', body, user.token)).status).toBe(202)
    expect((await grant(7)).status).toBe(201)
    expect(await counts()).toEqual({ generations: 1, entries: 3, balance: 100 - 30 + 7 })
  })
})
