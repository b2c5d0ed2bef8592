/**
 * bun run bench:cluster — cluster ownership (src/actors/cluster.ts), three
 * instances built by buildInstance (the production wiring, bench/cluster-instance.ts)
 * against one Postgres and one Redis, in this process, or each in its own
 * process with BENCH_CLUSTER_PROCESSES=1 (or --processes: then no instance's
 * work is paid on another's thread, and each loop runs inside its instance):
 *  (1) ask latency, one command at a time: local (the owner) vs forwarded
 *      (another instance, over its inbox stream and back), p50 and p99;
 *  (2) a hot user's charges per second, 256 at once: the single-statement
 *      baseline (a guarded UPDATE per autocommit), one instance, and three
 *      instances each sending a third of the clients and commands (two
 *      thirds forwarded);
 *  (3) 1,000 users spread over three instances (each owned where its first
 *      command landed; each instance's clients pick a random user).
 * Prints ratios against the baseline and the single instance, measured here.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { createClient } from 'redis'
import { makeLogger } from '../src/obs/logger'
import { makeActorSystem, type Exchange } from '../src/actors/actor-system'
import { dispatchByType } from '../src/actors/dispatch'
import { ledgerHandler, makeCredits, type LedgerMessage } from '../src/ledger/credits'
import type { LedgerResult } from '../src/ledger/commands'
import { makeLedgerWriter } from '../src/ledger/writer'
import { claimOwner } from '../src/actors/repository'
import {
  charge,
  chargeLoop,
  startInstance,
  type InstanceCommand,
  type InstanceSettings,
} from './cluster-instance'
import { spawnChild } from './ipc'
import { benchDatabase, closedLoop, summarize, table, type Sample } from './support'

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 256)
const OPS = Number(process.env.BENCH_OPS ?? 6000)
const LATENCY_OPS = 2000
const LATENCY_ROUND = 100
const SPREAD_USERS = 1000
const PROCESSES =
  process.env.BENCH_CLUSTER_PROCESSES === '1' || process.argv.includes('--processes')

const { database, url, drop } = await benchDatabase(8)
const db = database.db
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const prefix = `atelier-bench:${crypto.randomUUID().slice(0, 8)}:`
const dataDir = mkdtempSync(join(tmpdir(), 'atelier-bench-'))
const log = makeLogger({ level: 'silent', pretty: false })

/** One instance, in this process or its own: each loop runs where the instance is. */
type Node = {
  claim(users: string[]): Promise<unknown>
  loop(users: string[], clients: number, ops: number): Promise<Sample>
  owned(): Promise<number>
  close(): Promise<void>
}

async function node(id: string): Promise<Node> {
  const settings: InstanceSettings = { id, databaseUrl: url, redisUrl, prefix, dataDir }
  if (!PROCESSES) {
    const inst = await startInstance(settings)
    return {
      claim: (users) => Promise.all(users.map((u) => charge(inst, u))),
      loop: (users, clients, ops) => chargeLoop(inst, users, clients, ops),
      owned: async () => inst.userActors.stats().ownedActors,
      close: () => inst.close(),
    }
  }
  const child = spawnChild(id, join(import.meta.dir, 'cluster-instance.ts'), {
    BENCH_CLUSTER_INSTANCE: JSON.stringify(settings),
  })
  await child.started
  const call = <T>(command: InstanceCommand) => child.call<T>(command, 600_000)
  return {
    claim: (users) => call({ cmd: 'claim', users }),
    loop: (users, clients, ops) => call<Sample>({ cmd: 'loop', users, clients, ops }),
    owned: () => call<number>({ cmd: 'owned' }),
    close: () => child.end(),
  }
}

/** Loops run at once, one per node: `clients` and `ops` split between them. */
async function together(nodes: Node[], users: string[], clients: number, ops: number) {
  return merged(
    await Promise.all(
      nodes.map((n, i) =>
        n.loop(users, Math.ceil((clients - i) / nodes.length), Math.ceil((ops - i) / nodes.length)),
      ),
    ),
    true,
  )
}

/** Samples as one: taken at once (the longest one's seconds) or one after another. */
function merged(parts: Sample[], atOnce = false): Sample {
  const seconds = parts.map((p) => p.seconds)
  return {
    ops: parts.reduce((s, p) => s + p.ops, 0),
    seconds: atOnce ? Math.max(...seconds) : seconds.reduce((s, x) => s + x, 0),
    latencies: parts.flatMap((p) => p.latencies),
    rejected: parts.reduce((s, p) => s + p.rejected, 0),
  }
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

const all = await Promise.all(['bench-a', 'bench-b', 'bench-c'].map(node))
const [a, b] = all as [Node, Node, Node]
process.stdout.write(
  `\ninstances: ${PROCESSES ? 'three processes (BENCH_CLUSTER_PROCESSES=1)' : 'three in this process'}\n`,
)
try {
  // (1) one command at a time: what forwarding adds to an ask
  const [probe] = await seedUsers(1, 1_000_000_000)
  await a.claim([probe!])
  // warm both paths
  for (const n of [a, b, a, b]) await n.loop([probe!], 1, 50)
  // interleaved in rounds, so both paths see the same load on a shared machine (run one
  // after the other, a load change between them moved the difference by 1-3 ms)
  const rounds: { local: Sample[]; forwarded: Sample[] } = { local: [], forwarded: [] }
  for (let done = 0; done < LATENCY_OPS; done += LATENCY_ROUND) {
    rounds.local.push(await a.loop([probe!], 1, LATENCY_ROUND))
    rounds.forwarded.push(await b.loop([probe!], 1, LATENCY_ROUND))
  }
  const local = summarize(merged(rounds.local))
  const forwarded = summarize(merged(rounds.forwarded))
  process.stdout.write(
    `\n(1) ask latency, one at a time, ${LATENCY_OPS} each, in rounds of ${LATENCY_ROUND} (ms)\n` +
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
  await a.claim([hot1!])
  const one = summarize(await a.loop([hot1!], CLIENTS, OPS))
  const [hot3] = await seedUsers(1, 1_000_000_000)
  await a.claim([hot3!])
  const three = summarize(await together(all, [hot3!], CLIENTS, OPS))
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
  // owners: a third each
  await Promise.all(all.map((n, i) => n.claim(spread.filter((_, j) => j % 3 === i))))
  const many = summarize(await together(all, spread, CLIENTS, OPS))
  const owned = await Promise.all(all.map((n) => n.owned()))
  process.stdout.write(
    `\n(3) ${SPREAD_USERS} users spread over 3 instances (owned: ${owned.join(' / ')}), clients=${CLIENTS} ops=${OPS}\n` +
      table([
        { path: 'actor, 3 instances', 'ops/s': many.opsPerSec, p50: many.p50, p99: many.p99 },
      ]) +
      '\n',
  )
} finally {
  for (const n of all) await n.close()
  await drop()
  const redis = createClient({ url: redisUrl })
  await redis.connect()
  for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
    if (keys.length) await redis.del(keys)
  await redis.quit()
  rmSync(dataDir, { recursive: true, force: true })
}
