/**
 * bun run bench:cluster — cluster ownership (src/actors/cluster.ts), in one
 * process with three instances built by buildInstance (the production
 * wiring) against one Postgres and one Redis:
 *  (1) ask latency, one command at a time: local (the owner) vs forwarded
 *      (another instance, over its inbox stream and back), p50 and p99;
 *  (2) a hot user's charges per second, 256 at once: the single-statement
 *      baseline (a guarded UPDATE per autocommit), one instance, and three
 *      instances with the commands spread round-robin (two thirds forwarded);
 *  (3) 1,000 users spread over three instances (each owned where its first
 *      command landed, every command of it sent to a random instance).
 * Prints ratios against the baseline and the single instance, measured here.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { createClient } from 'redis'
import { loadConfig } from '../src/config/config'
import { makeLogger } from '../src/obs/logger'
import { buildInstance, type Instance } from '../src/server'
import { makeActorSystem, type Exchange } from '../src/actors/actor-system'
import { dispatchByType } from '../src/actors/dispatch'
import { ledgerHandler, makeCredits, type LedgerMessage } from '../src/ledger/credits'
import type { LedgerResult } from '../src/ledger/commands'
import { makeLedgerWriter } from '../src/ledger/writer'
import { claimOwner } from '../src/actors/repository'
import { benchDatabase, closedLoop, summarize, table } from './support'

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 256)
const OPS = Number(process.env.BENCH_OPS ?? 6000)
const LATENCY_OPS = 2000
const SPREAD_USERS = 1000

const { database, url, drop } = await benchDatabase(8)
const db = database.db
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = `atelier-bench:${crypto.randomUUID().slice(0, 8)}:`
const dataDir = mkdtempSync(join(tmpdir(), 'atelier-bench-'))
const log = makeLogger({ level: 'silent', pretty: false })

async function instance(id: string) {
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: url,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    JWT_SECRET: 'bench-secret-that-is-long-enough-0123456789',
    DATA_DIR: dataDir,
    DB_POOL_MAX: '8',
    MIGRATE_ON_START: 'false',
    RENDER_CONCURRENCY: '0',
    INSTANCE_ID: id,
  })
  return buildInstance(config, log)
}

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

const charge = (inst: Instance, userId: string) =>
  inst.credits.apply(userId, {
    kind: 'charge',
    amount: 1,
    reason: 'bench',
    key: crypto.randomUUID(),
  })

const [a, b, c] = [await instance('bench-a'), await instance('bench-b'), await instance('bench-c')]
const all = [a, b, c]
try {
  // (1) one command at a time: what forwarding adds to an ask
  const [probe] = await seedUsers(1, 1_000_000_000)
  await charge(a, probe!) // a claims it
  for (let i = 0; i < 200; i++) await charge(i % 2 ? a : b, probe!) // warm both paths
  const local = summarize(await closedLoop(1, LATENCY_OPS, () => charge(a, probe!)))
  const forwarded = summarize(await closedLoop(1, LATENCY_OPS, () => charge(b, probe!)))
  process.stdout.write(
    `\n(1) ask latency, one at a time, ${LATENCY_OPS} each (ms)\n` +
      table([
        { path: 'local (owner)', p50: local.p50, p99: local.p99 },
        { path: 'forwarded', p50: forwarded.p50, p99: forwarded.p99 },
        {
          path: 'forwarding adds',
          p50: forwarded.p50 - local.p50,
          p99: forwarded.p99 - local.p99,
        },
      ]) +
      '\n',
  )

  // (2) a hot user, 256 at once
  const [hotBase] = await seedUsers(1, 1_000_000_000)
  const baseline = summarize(
    await closedLoop(CLIENTS, OPS, () =>
      sql`update credit_accounts set balance = balance - 1
          where user_id = ${hotBase!} and balance >= 1`.execute(db),
    ),
  )
  // the embedded path: the same actor runtime and ledger writer, no epoch (what fencing costs)
  const unfencedActors = makeActorSystem<Exchange<LedgerMessage, LedgerResult>>({
    name: 'bench_unfenced',
    handle: dispatchByType<LedgerMessage, LedgerResult>({
      ledger: ledgerHandler(makeLedgerWriter(db), () => {}),
    }),
    log,
  })
  const unfencedCredits = makeCredits(unfencedActors.ask)
  const [hot0] = await seedUsers(1, 1_000_000_000)
  const unfenced = summarize(
    await closedLoop(CLIENTS, OPS, () =>
      unfencedCredits.apply(hot0!, {
        kind: 'charge',
        amount: 1,
        reason: 'bench',
        key: crypto.randomUUID(),
      }),
    ),
  )
  await unfencedActors.close()
  // the same bare runtime with every batch fenced by an epoch (what fencing costs, alone)
  const [hotF] = await seedUsers(1, 1_000_000_000)
  const { epoch } = await claimOwner(db, hotF!, 'bench-bare', null, 3000)
  const inner = dispatchByType<LedgerMessage, LedgerResult>({
    ledger: ledgerHandler(makeLedgerWriter(db), () => {}),
  })
  const fencedActors = makeActorSystem<Exchange<LedgerMessage, LedgerResult>>({
    name: 'bench_fenced',
    handle: (key, batch) => inner(key, batch, { epoch }),
    log,
  })
  const fencedCredits = makeCredits(fencedActors.ask)
  const fenced = summarize(
    await closedLoop(CLIENTS, OPS, () =>
      fencedCredits.apply(hotF!, {
        kind: 'charge',
        amount: 1,
        reason: 'bench',
        key: crypto.randomUUID(),
      }),
    ),
  )
  await fencedActors.close()
  const [hot1] = await seedUsers(1, 1_000_000_000)
  await charge(a, hot1!)
  const one = summarize(await closedLoop(CLIENTS, OPS, () => charge(a, hot1!)))
  const [hot3] = await seedUsers(1, 1_000_000_000)
  await charge(a, hot3!)
  const three = summarize(await closedLoop(CLIENTS, OPS, (i) => charge(all[i % 3]!, hot3!)))
  process.stdout.write(
    `\n(2) one hot user, clients=${CLIENTS} ops=${OPS}\n` +
      table([
        {
          path: 'baseline: guarded UPDATE',
          'ops/s': baseline.opsPerSec,
          p50: baseline.p50,
          p99: baseline.p99,
          'x baseline': 1,
        },
        {
          path: 'actor, unfenced (embedded path)',
          'ops/s': unfenced.opsPerSec,
          p50: unfenced.p50,
          p99: unfenced.p99,
          'x baseline': unfenced.opsPerSec / baseline.opsPerSec,
        },
        {
          path: 'actor, fenced (bare runtime, epoch checked)',
          'ops/s': fenced.opsPerSec,
          p50: fenced.p50,
          p99: fenced.p99,
          'x baseline': fenced.opsPerSec / baseline.opsPerSec,
        },
        {
          path: 'actor, 1 instance (full wiring, events relayed)',
          'ops/s': one.opsPerSec,
          p50: one.p50,
          p99: one.p99,
          'x baseline': one.opsPerSec / baseline.opsPerSec,
        },
        {
          path: 'actor, 3 instances (2/3 forwarded)',
          'ops/s': three.opsPerSec,
          p50: three.p50,
          p99: three.p99,
          'x baseline': three.opsPerSec / baseline.opsPerSec,
        },
      ]) +
      `\n3 instances / 1 instance: ${(three.opsPerSec / one.opsPerSec).toFixed(2)} (target >= 0.8); ` +
      `fenced / unfenced (bare): ${(fenced.opsPerSec / unfenced.opsPerSec).toFixed(2)}\n`,
  )

  // (3) many users spread over three instances
  const spread = await seedUsers(SPREAD_USERS, 1_000_000_000)
  await Promise.all(spread.map((u, i) => charge(all[i % 3]!, u))) // owners: a third each
  const many = summarize(
    await closedLoop(CLIENTS, OPS, () =>
      charge(
        all[Math.floor(Math.random() * 3)]!,
        spread[Math.floor(Math.random() * spread.length)]!,
      ),
    ),
  )
  const owned = all.map((i) => i.userActors.stats().ownedActors)
  process.stdout.write(
    `\n(3) ${SPREAD_USERS} users spread over 3 instances (owned: ${owned.join(' / ')}), clients=${CLIENTS} ops=${OPS}\n` +
      table([
        { path: 'actor, 3 instances', 'ops/s': many.opsPerSec, p50: many.p50, p99: many.p99 },
      ]) +
      '\n',
  )
} finally {
  for (const i of all) await i.close()
  await drop()
  const redis = createClient({ url: redisUrl })
  await redis.connect()
  for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
    if (keys.length) await redis.del(keys)
  await redis.quit()
  rmSync(dataDir, { recursive: true, force: true })
}
