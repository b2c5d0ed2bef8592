import { afterAll, describe, expect, it } from 'bun:test'
import { sql } from 'kysely'
import postgres from 'postgres'
import { makeDatabase, type Database } from '../../src/db/database'
import { classifyDbError } from '../../src/db/errors'
import { useTestEnv } from '../support/env'
import { startFaultProxy } from '../support/fault-proxy'

/**
 * The Postgres client on its failure paths (node-postgres through kysely's
 * PostgresDialect): every call has a deadline, a dead connection never kills
 * the process or wedges the pool, and the server-side timeouts are set.
 */
const env = await useTestEnv()
const u = new URL(env.databaseUrl)
const proxy = await startFaultProxy({ host: u.hostname, port: Number(u.port || 5432) })
const admin = postgres(env.databaseUrl, { max: 1, onnotice: () => {} })
const opened: Database[] = []
const lost: Error[] = []

afterAll(async () => {
  await Promise.all(opened.map((d) => d.close().catch(() => {})))
  await proxy.close()
  await admin.end()
})

async function open(overrides: Partial<Parameters<typeof makeDatabase>[0]> = {}) {
  const database = await makeDatabase({
    url: proxy.url(env.databaseUrl),
    dataDir: '',
    poolMax: 3,
    statementTimeoutMs: 5000,
    connectTimeoutMs: 1000,
    onError: (err) => lost.push(err),
    ...overrides,
  })
  opened.push(database)
  return database
}

async function timed<T>(work: Promise<T>) {
  const t0 = performance.now()
  const outcome = await work.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  )
  return { ...outcome, ms: performance.now() - t0 }
}

const one = (database: Database) => sql<{ one: number }>`select 1 as one`.execute(database.db)

describe('postgres client under faults', () => {
  it('fails a call on a stalled connection at its deadline, as unavailable, and serves after heal', async () => {
    const database = await open({ callDeadlineMs: 400 })
    await one(database)
    proxy.stall()
    try {
      const stalled = await timed(one(database))
      expect(stalled.ok).toBe(false)
      expect(classifyDbError(stalled.ok ? null : stalled.error)).toBe('unavailable')
      expect(stalled.ms).toBeLessThan(1500)
    } finally {
      proxy.heal()
    }
    // the stalled connection was dropped, not returned to the pool: the next call answers
    const after = await timed(one(database))
    expect(after.ok).toBe(true)
    expect(after.ms).toBeLessThan(1000)
  })

  it('survives pg_terminate_backend of every connection, idle and inside a transaction', async () => {
    const database = await open()
    await Promise.all([one(database), one(database), one(database)])
    const inside = database.db.transaction().execute(async (trx) => {
      await sql`select 1`.execute(trx)
      await admin`select pg_terminate_backend(pid) from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid()`
      // the session is gone: the next statement fails, as unavailable
      await sql`select 1`.execute(trx)
    })
    const failed = await timed(inside)
    expect(failed.ok).toBe(false)
    expect(classifyDbError(failed.ok ? null : failed.error)).toBe('unavailable')
    // the process is alive (the error events had listeners) and the pool replaces its clients:
    // a pooled client whose death was not noticed yet fails once (unavailable), never more
    let failures = 0
    for (let answered = 0; answered < 3;) {
      const call = await timed(one(database))
      if (call.ok) answered++
      else {
        expect(classifyDbError(call.error)).toBe('unavailable')
        if (++failures > 3) throw new Error('the pool kept handing out dead connections')
      }
    }
  })

  it('refuses quickly while the server refuses connections, and recovers when it answers', async () => {
    const database = await open()
    proxy.cut()
    proxy.refuse()
    try {
      const refused = await timed(one(database))
      expect(refused.ok).toBe(false)
      expect(classifyDbError(refused.ok ? null : refused.error)).toBe('unavailable')
      expect(refused.ms).toBeLessThan(1500)
    } finally {
      proxy.heal()
    }
    expect((await timed(one(database))).ok).toBe(true)
  })

  it('bounds a lock wait with lock_timeout (55P03, unavailable)', async () => {
    const database = await open({ lockTimeoutMs: 300 })
    await admin`create table if not exists lock_probe (id int primary key)`
    await admin`insert into lock_probe values (1) on conflict do nothing`
    const holder = await admin.reserve()
    try {
      await holder`begin`
      await holder`select * from lock_probe where id = 1 for update`
      const waited = await timed(
        sql`update lock_probe set id = 1 where id = 1`.execute(database.db),
      )
      expect(waited.ok).toBe(false)
      expect((waited.ok ? null : (waited.error as { code?: string }))?.code).toBe('55P03')
      expect(classifyDbError(waited.ok ? null : waited.error)).toBe('unavailable')
      expect(waited.ms).toBeLessThan(2000)
    } finally {
      await holder`rollback`
      holder.release()
    }
  })

  it('ends a session left idle inside a transaction (a frozen instance) and frees its locks', async () => {
    const database = await open({ idleInTransactionMs: 300 })
    await admin`create table if not exists lock_probe (id int primary key)`
    await admin`insert into lock_probe values (1) on conflict do nothing`
    let release!: () => void
    const frozen = new Promise<void>((r) => (release = r))
    const locked = Promise.withResolvers<void>()
    const held = database.db.transaction().execute(async (trx) => {
      await sql`select * from lock_probe where id = 1 for update`.execute(trx)
      locked.resolve()
      await frozen // the instance stops here, its transaction open
      await sql`select 1`.execute(trx)
    })
    held.catch(() => {})
    await locked.promise
    try {
      // another session gets the row once Postgres ended the idle transaction
      const t0 = performance.now()
      await admin`set lock_timeout = '5s'`
      await admin`update lock_probe set id = 1 where id = 1`
      expect(performance.now() - t0).toBeLessThan(3000)
    } finally {
      release()
    }
    const outcome = await timed(held)
    expect(outcome.ok).toBe(false)
    expect(classifyDbError(outcome.ok ? null : outcome.error)).toBe('unavailable')
  })

  it('reports the connections it lost through onError, never as a process error', () => {
    expect(lost.length).toBeGreaterThan(0)
  })
})
