/**
 * bun run bench:ledger — charges per second against one Postgres, three ways:
 *  (a) baseline: one guarded UPDATE per autocommit transaction;
 *  (b) naive check-then-act: read, then insert + update without a lock (counts overdrafts);
 *  (c) the actor path: user actors over ledger_apply, with group commit.
 * Scenarios: one hot user, and 10,000 users chosen at random. Prints (c)/(a).
 *
 *   BENCH_SCENARIO=hot|spread  one scenario only
 *   BENCH_PG_STATEMENTS=1  pg_stat_statements over (a) and over (c) of each scenario (the
 *                          Postgres of BENCH_DATABASE_URL must preload it: see
 *                          bench/private-postgres.ts)
 */
import { sql } from 'kysely'
import postgres from 'postgres'
import type { AppError } from '../src/errors'
import { makeActorSystem, type Exchange } from '../src/actors/actor-system'
import { dispatchByType } from '../src/actors/dispatch'
import { ledgerHandler, makeCredits, type LedgerMessage } from '../src/ledger/credits'
import type { LedgerResult } from '../src/ledger/commands'
import { makeLedgerWriter } from '../src/ledger/writer'
import { makeLogger } from '../src/obs/logger'
import { benchDatabase, closedLoop, resetStatements, statements, summarize, table } from './support'

// batches grow with concurrency; both levels are printed, the targets are read at the higher
const CLIENT_LEVELS = (process.env.BENCH_CLIENTS ?? '64,256').split(',').map(Number)
let CLIENTS = 64
let OPS = 6000
const USERS = 10_000
/** BENCH_SCENARIO=hot or spread: that scenario alone (e.g. under a CPU profiler). */
const ONLY = process.env.BENCH_SCENARIO
if (ONLY !== undefined && ONLY !== 'hot' && ONLY !== 'spread')
  throw new Error(`BENCH_SCENARIO is hot or spread, not ${ONLY}`)
const POOL = 16
const AMOUNT = 30

const { database, url, drop } = await benchDatabase(POOL)
const db = database.db
const PG_STATEMENTS = process.env.BENCH_PG_STATEMENTS === '1'
const inspect = PG_STATEMENTS ? postgres(url, { max: 1, onnotice: () => {} }) : undefined
const profiles: string[] = []

/** `run`, with what Postgres spent on it (BENCH_PG_STATEMENTS=1) kept for the report. */
async function profiled<T>(label: string, run: () => Promise<T>): Promise<T> {
  if (!inspect) return run()
  await resetStatements(inspect)
  const out = await run()
  profiles.push(`pg_stat_statements, ${label}\n${await statements(inspect)}`)
  return out
}
const log = makeLogger({ level: 'silent', pretty: false })

async function seedUsers(n: number, balance: number) {
  const ids = Array.from({ length: n }, () => Bun.randomUUIDv7())
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = ids.slice(i, i + 1000)
    await db
      .insertInto('users')
      .values(
        chunk.map((id) => ({
          id,
          email: `${id}@bench`,
          password_hash: 'x',
          role: 'user' as const,
        })),
      )
      .execute()
    await db
      .insertInto('credit_accounts')
      .values(chunk.map((user_id) => ({ user_id, balance, last_seq: 0 })))
      .execute()
  }
  return ids
}

const pick = (ids: string[]) => ids[Math.floor(Math.random() * ids.length)]!

function baseline(ids: string[]) {
  return closedLoop(CLIENTS, OPS, (i) =>
    sql`update credit_accounts set balance = balance - ${AMOUNT} where user_id = ${ids.length === 1 ? ids[0]! : pick(ids)} and balance >= ${AMOUNT}`.execute(
      db,
    ),
  )
}

/** `fundedCharges`: charges each user's balance pays for; any accepted beyond that is an overdraft. */
async function naive(ids: string[], fundedCharges: number) {
  const sample = await closedLoop(CLIENTS, OPS, async () => {
    const userId = ids.length === 1 ? ids[0]! : pick(ids)
    const row = await db
      .selectFrom('credit_accounts')
      .select(['balance', 'last_seq'])
      .where('user_id', '=', userId)
      .executeTakeFirstOrThrow()
    if (row.balance < AMOUNT) return false
    await db.transaction().execute(async (trx) => {
      await trx
        .insertInto('ledger_entries')
        .values({
          id: Bun.randomUUIDv7(),
          user_id: userId,
          seq: Number(row.last_seq) + 1 + Math.floor(Math.random() * 1e12),
          amount: -AMOUNT,
          balance_after: row.balance - AMOUNT,
          kind: 'charge',
          reason: 'naive',
          generation_id: null,
          refund_of: null,
          idempotency_key: null,
        })
        .execute()
      await trx
        .updateTable('credit_accounts')
        .set({ balance: row.balance - AMOUNT })
        .where('user_id', '=', userId)
        .execute()
    })
  })
  const { rows } = await sql<{ overdrafts: number }>`
    select coalesce(sum(greatest(0, accepted - ${fundedCharges})), 0)::int as overdrafts from (
      select count(*) as accepted from ledger_entries
      where reason = 'naive' and user_id in (${sql.join(ids)}) group by user_id
    ) per_user`.execute(db)
  return { sample, overdrafts: rows[0]!.overdrafts }
}

function actorPath(ids: string[]) {
  const actors = makeActorSystem<Exchange<LedgerMessage, LedgerResult>>({
    name: 'bench_actor',
    handle: dispatchByType<LedgerMessage, LedgerResult>({
      ledger: ledgerHandler(makeLedgerWriter(db), () => {}),
    }),
    log,
    mailboxCapacity: 100_000,
  })
  const credits = makeCredits(actors.ask)
  const charge = (i: number) =>
    credits
      .apply(ids.length === 1 ? ids[0]! : pick(ids), {
        kind: 'charge',
        amount: AMOUNT,
        reason: 'bench',
        key: `b${i}`,
      })
      .catch((e: AppError) => {
        if (e.code === 'insufficient_credits') return false
        throw e
      })
  return { actors, run: () => closedLoop(CLIENTS, OPS, charge) }
}

const rows: Record<string, string | number>[] = []
function record(
  scenario: string,
  path: string,
  s: ReturnType<typeof summarize>,
  extra: Record<string, string | number> = {},
) {
  rows.push({
    scenario,
    path,
    'ops/s': Math.round(s.opsPerSec),
    'p50 ms': s.p50,
    'p99 ms': s.p99,
    rejected: s.rejected,
    ...extra,
  })
  return s
}

try {
  for (const level of CLIENT_LEVELS) {
    CLIENTS = level
    OPS = Number(process.env.BENCH_OPS ?? level * 48)
    rows.length = 0
    profiles.length = 0
    await runScenarios()
    process.stdout.write(`\nclients=${CLIENTS} ops=${OPS} pool=${POOL}\n${table(rows)}\n`)
    for (const p of profiles) process.stdout.write(`\n${p}\n`)
  }
} finally {
  await inspect?.end()
  await drop()
}

async function runScenarios() {
  // balances funded for exactly OPS/2 charges, so (b) has something to overdraw
  const funded = OPS / 2
  const scenarios = (['hot user', `${USERS} users`] as const).filter(
    (s) => !ONLY || (ONLY === 'hot' ? s === 'hot user' : s !== 'hot user'),
  )
  for (const scenario of scenarios) {
    const n = scenario === 'hot user' ? 1 : USERS
    const perUser = scenario === 'hot user' ? funded * AMOUNT : 10 * AMOUNT
    const baselineIds = await seedUsers(n, perUser * 100)
    const a = record(
      scenario,
      '(a) single UPDATE',
      summarize(await profiled(`${scenario}, (a)`, () => baseline(baselineIds))),
    )
    const nv = await naive(await seedUsers(n, perUser), perUser / AMOUNT)
    record(scenario, '(b) naive check-then-act', summarize(nv.sample), {
      overdrafts: nv.overdrafts,
    })
    const ids = await seedUsers(n, perUser * 100)
    const { actors, run } = actorPath(ids)
    const c = record(
      scenario,
      '(c) actor path',
      summarize(await profiled(`${scenario}, (c)`, run)),
      {
        'mean batch': actors.stats().meanBatchSize,
      },
    )
    await actors.close()
    const negative = await sql<{
      n: number
    }>`select count(*)::int as n from credit_accounts where balance < 0`.execute(db)
    rows.push({
      scenario,
      path: '(c)/(a)',
      'ops/s': `${(c.opsPerSec / a.opsPerSec).toFixed(2)}×`,
      overdrafts: `(c) negative balances: ${negative.rows[0]!.n}`,
    })
  }
}
