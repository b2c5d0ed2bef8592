import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import postgres from 'postgres'
import { useTestEnv } from '../support/env'
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy'
import {
  killServerProcesses,
  startServerProcess,
  type ServerProcess,
} from './servers'
import { checkInvariants, checkResponses, settleItems } from './invariants'
import { startLoad, tally, type LoadUser, type Operation, type Response_ } from './load'

/**
 * Postgres faults under load, against real server processes that reach
 * Postgres through a fault proxy (the shared Postgres is never stopped).
 * After each fault: no process died, no 500, every 503 carried Retry-After,
 * the instances answered again within 5 s of Postgres answering, and every
 * invariant holds on the database. Figures go to the README's "Faults".
 */
const RECOVERY_MS = 5000
const ADMIN = 'faults-admin@example.com'
const PASSWORD = 'a long password'
const env = await useTestEnv()
const u = new URL(env.databaseUrl)
let proxy: FaultProxy
/** Direct to the test database, not through the proxy: inspection and pg_terminate_backend. */
const sql = postgres(env.databaseUrl, { max: 1, onnotice: () => {} })
const servers: ServerProcess[] = []
const operations: Operation[] = []
let users: LoadUser[] = []
let adminToken = ''

function serverEnv(): Record<string, string> {
  return {
    DATABASE_URL: proxy.url(env.databaseUrl),
    REDIS_URL: env.services.redisUrl,
    REDIS_PREFIX: env.redisPrefix,
    JWT_SECRET: 'faults-test-secret-that-is-long-enough-0123456789',
    ADMIN_EMAILS: ADMIN,
    DB_POOL_MAX: '6',
    DB_CONNECT_TIMEOUT_MS: '1000',
    RENDER_CONCURRENCY: '2',
    RENDER_SIZE: '64',
    RENDER_LEASE_MS: '3000',
    RENDER_SWEEP_MS: '500',
    RENDER_MAX_ATTEMPTS: '8',
    RENDER_RETRY_BASE_MS: '100',
    MAX_ACTIVE_GENERATIONS: '10000',
    MAX_IMAGES_PER_HOUR: '1000000',
    DRAIN_TIMEOUT_MS: '8000',
    DATA_DIR: env.dataDir,
  }
}

async function post(url: string, path: string, body: unknown, token?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const res = await fetch(`${url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) })
  return { status: res.status, json: (await res.json()) as any }
}

beforeAll(async () => {
  proxy = await startFaultProxy({ host: u.hostname, port: Number(u.port || 5432) })
  servers.push(
    ...(await Promise.all([startServerProcess(serverEnv()), startServerProcess(serverEnv())])),
  )
  const url = servers[0]!.url
  adminToken = (await post(url, '/v1/auth/register', { email: ADMIN, password: PASSWORD })).json
    .token
  users = await Promise.all(
    Array.from({ length: 6 }, async (_, i) => {
      const r = await post(url, '/v1/auth/register', {
        email: `faults-${i}-${crypto.randomUUID()}@example.com`,
        password: PASSWORD,
      })
      return { id: r.json.user.id as string, token: r.json.token as string }
    }),
  )
}, 30_000)

afterAll(async () => {
  await killServerProcesses()
  await proxy?.close()
  await sql.end()
})

const live = () => servers.filter((s) => s.proc.exitCode === null && s.proc.signalCode === null)

/** Time from `since` until every live instance is ready and serves a database read. */
async function recovery(since: number, ms = 15_000) {
  const deadline = performance.now() + ms
  for (const s of live()) {
    for (;;) {
      const ready = await fetch(`${s.url}/health/ready`).catch(() => undefined)
      const read = await fetch(`${s.url}/v1/credits`, {
        headers: { authorization: `Bearer ${users[0]!.token}` },
      }).catch(() => undefined)
      if (ready?.status === 200 && read?.status === 200) break
      if (performance.now() > deadline)
        throw new Error(
          `${s.url} did not recover within ${ms} ms (${ready?.status}, ${read?.status})`,
        )
      await Bun.sleep(50)
    }
  }
  return performance.now() - since
}

/** 503s answered to requests that started after `t`: the tail of the outage seen by clients. */
function last503After(responses: Response_[], t: number) {
  const late = responses.filter((r) => r.status === 503 && r.startedAt >= t)
  return late.length === 0 ? 0 : Math.max(...late.map((r) => r.endedAt)) - t
}

type Figures = Record<string, unknown>
const figures: Record<string, Figures> = {}
afterAll(() => {
  // one line per scenario, for the README's Faults section
  for (const [name, f] of Object.entries(figures))
    console.log(`[faults] ${name}: ${JSON.stringify(f)}`)
})

/** Runs load across the live instances around `fault`, then checks everything. */
async function underLoad(
  name: string,
  fault: () => Promise<number>,
  targets = () => live().map((s) => s.url),
) {
  const load = startLoad({ targets, users, adminToken })
  await Bun.sleep(500) // some work in flight before the fault
  const healedAt = await fault()
  const recoveredMs = await recovery(healedAt)
  const tail = last503After(load.responses, healedAt + recoveredMs)
  await Bun.sleep(500) // the load runs on after recovery
  await load.stop()
  operations.push(...load.operations)
  // nobody crashed
  for (const s of servers)
    expect({ exit: s.proc.exitCode, signal: s.proc.signalCode }).toEqual({
      exit: null,
      signal: null,
    })
  checkResponses(load.responses)
  expect(recoveredMs).toBeLessThan(RECOVERY_MS)
  expect(tail).toBe(0)
  await settleItems(sql)
  await checkInvariants(sql, operations)
  figures[name] = { recoveredMs: Math.round(recoveredMs), responses: tally(load.responses) }
  return load
}

describe('postgres faults under load', () => {
  it('rides through a 1 s cut: 503s with Retry-After, recovery within 5 s, invariants hold', async () => {
    await underLoad('cut 1 s', async () => {
      proxy.cut()
      proxy.refuse(1000)
      const t0 = performance.now()
      while (proxy.mode === 'refusing') await Bun.sleep(10)
      return t0 + 1000
    })
  }, 60_000)

  it('rides through a 20 s outage: not ready meanwhile, no crash, no wedge, recovery within 5 s', async () => {
    const load = await underLoad('outage 20 s', async () => {
      proxy.cut()
      proxy.refuse()
      const t0 = performance.now()
      try {
        // meanwhile: every instance says not ready, and answers rather than hangs
        await Bun.sleep(2000)
        for (const s of live()) {
          const ready = await fetch(`${s.url}/health/ready`, { signal: AbortSignal.timeout(5000) })
          expect(ready.status).toBe(503)
          expect(ready.headers.get('retry-after')).not.toBeNull()
        }
        await Bun.sleep(Math.max(0, 20_000 - (performance.now() - t0)))
      } finally {
        proxy.heal()
      }
      return performance.now()
    })
    expect(load.responses.filter((r) => r.status === 503).length).toBeGreaterThan(0)
  }, 90_000)

  it('survives pg_terminate_backend of every backend of its database', async () => {
    await underLoad('pg_terminate_backend', async () => {
      const killed = await sql`select pg_terminate_backend(pid) as ok from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid()`
      expect(killed.length).toBeGreaterThan(0)
      return performance.now()
    })
  }, 60_000)
})
