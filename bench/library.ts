/**
 * bun run bench:library — library search and user statistics at scale, each
 * against a baseline in the same run:
 *  - 100,000 generated poses; ?q= p50/p99 with the trigram indexes vs the
 *    same query forced to a sequential scan (enable_indexscan/bitmapscan off);
 *  - ?tag= with the GIN index on tags vs without it (dropped inside a
 *    transaction that is rolled back);
 *  - GET /v1/stats/me over HTTP for a user with 1,000,000 ledger entries and
 *    100,000 items (target p99 < 50 ms): its five statements over the daily
 *    rollups of sql/0011 vs the same figures from the source rows with the
 *    covering indexes sql/0009 had (bench/stats-source.ts); the two must agree.
 * Each measured query runs BENCH_REPEAT (default 200) times, one at a time;
 * the stats baseline BENCH_STATS_REPEAT (default 50) times.
 */
import { sql, type Kysely } from 'kysely'
import { loadConfig } from '../src/config/config'
import type { DB } from '../src/db/schema'
import { listPoses, type PoseListOptions } from '../src/library/repository'
import { makeLogger } from '../src/obs/logger'
import { buildInstance } from '../src/server'
import { makeStats, readRange } from '../src/stats/service'
import { sourceStats, STATS_SOURCE_INDEXES } from './stats-source'
import { benchDatabase, table } from './support'

const REPEAT = Number(process.env.BENCH_REPEAT ?? 200)
// the baseline's 366-day read touches every row of the user (~1 s): fewer rounds keep a run short
const STATS_REPEAT = Number(process.env.BENCH_STATS_REPEAT ?? 50)
const POSES = Number(process.env.BENCH_POSES ?? 100_000)
const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 1_000_000)
const ITEMS = Number(process.env.BENCH_ITEMS ?? 100_000)

const { database, url, drop } = await benchDatabase(8)
const db = database.db
const log = makeLogger({ level: 'silent', pretty: false })

function percentiles(latencies: number[]) {
  const s = [...latencies].sort((a, b) => a - b)
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
  return { p50: at(50), p99: at(99) }
}

async function time(op: () => Promise<unknown>, repeat = REPEAT) {
  for (let i = 0; i < 3; i++) await op() // warm-up
  const latencies: number[] = []
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now()
    await op()
    latencies.push(performance.now() - t0)
  }
  return percentiles(latencies)
}

/** Runs `body` in a transaction that is always rolled back (settings and dropped indexes vanish). */
async function rolledBack<T>(body: (trx: Kysely<DB>) => Promise<T>): Promise<T> {
  let out!: T
  const rollback = new Error('rollback')
  await db
    .transaction()
    .execute(async (trx) => {
      out = await body(trx)
      throw rollback
    })
    .catch((e) => {
      if (e !== rollback) throw e
    })
  return out
}

// --- 100,000 poses: names of two words and a number, three tags of 300 ---
const t0 = performance.now()
await sql`insert into poses (id, name, category_id, tags, difficulty, keypoints)
  select gen_random_uuid(),
    (array['Relaxed','Dynamic','Seated','Leaning','Twisting','Reaching','Crouching','Balanced',
           'Stretching','Kneeling','Jumping','Turning','Resting','Lunging','Bowing','Floating',
           'Striding','Coiled','Open','Guarded'])[1 + i % 20] || ' ' ||
    (array['stance','reach','twist','arch','pivot','lean','squat','kick','wave','spin',
           'bend','lift','hold','glide','step','dive','curl','lunge','hug','shrug',
           'point','press','pull','sway','drop'])[1 + (i / 20) % 25] || ' ' || i,
    (array['standing','sitting','lying','action','sports','dance','yoga','fitness','portrait'])[1 + i % 9],
    array['tag-' || (i % 300), 'tag-' || ((i * 7 + 3) % 300), 'tag-' || ((i * 13 + 5) % 300)],
    (array['easy','medium','hard'])[1 + i % 3],
    k.keypoints
  from generate_series(1, ${POSES}) i, (select keypoints from poses limit 1) k`.execute(db)
await sql`analyze poses`.execute(db)
console.log(`${POSES} poses in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

const searches: { what: string; options: PoseListOptions }[] = [
  { what: '?q=twist (a word, ~4% of poses)', options: { limit: 21, q: 'twist' } },
  { what: '?q=77 (a number, ~2%)', options: { limit: 21, q: '77' } },
  { what: '?q=4242 (rare)', options: { limit: 21, q: '4242' } },
  { what: '?q=no such pose (none)', options: { limit: 21, q: 'no such pose' } },
]
const rows: Record<string, string | number>[] = []
for (const s of searches) {
  const indexed = await time(() => listPoses(db, s.options))
  const scan = await rolledBack(async (trx) => {
    await sql`set local enable_indexscan = off`.execute(trx)
    await sql`set local enable_bitmapscan = off`.execute(trx)
    return time(() => listPoses(trx, s.options))
  })
  rows.push({
    query: s.what,
    'trigram p50 ms': indexed.p50,
    'trigram p99 ms': indexed.p99,
    'seq scan p50 ms': scan.p50,
    'seq scan p99 ms': scan.p99,
    'p50 speed-up': `${(scan.p50 / indexed.p50).toFixed(1)}×`,
  })
}
console.log(`\n### ?q= search, ${POSES.toLocaleString('en')} poses\n`)
console.log(table(rows))

const tagRows: Record<string, string | number>[] = []
for (const tags of [['tag-17'], ['tag-17', 'tag-122'], ['tag-299', 'tag-1', 'tag-2']]) {
  const options = { limit: 21, tags }
  const withGin = await time(() => listPoses(db, options))
  const without = await rolledBack(async (trx) => {
    await sql`drop index poses_tags`.execute(trx)
    return time(() => listPoses(trx, options))
  })
  tagRows.push({
    query: `?${tags.map((t) => `tag=${t}`).join('&')}`,
    'GIN p50 ms': withGin.p50,
    'GIN p99 ms': withGin.p99,
    'no index p50 ms': without.p50,
    'no index p99 ms': without.p99,
    'p50 speed-up': `${(without.p50 / withGin.p50).toFixed(1)}×`,
  })
}
console.log(`\n### ?tag= filter, ${POSES.toLocaleString('en')} poses\n`)
console.log(table(tagRows))

// --- one user with 1,000,000 ledger entries and 100,000 items over 365 days ---
const t1 = performance.now()
const userId = Bun.randomUUIDv7()
await sql`insert into users (id, email, password_hash, role) values (${userId}, 'bench@stats', 'x', 'user')`.execute(
  db,
)
await sql`insert into credit_accounts (user_id, balance, last_seq) values (${userId}, 1000000, ${ENTRIES})`.execute(
  db,
)
// every 10th entry a grant or purchase, the rest charges and refunds; spread over 365 days
await sql`insert into ledger_entries (id, user_id, seq, amount, balance_after, kind, reason, created_at)
  select gen_random_uuid(), ${userId}, i,
    case when i % 10 = 0 then 1000 when i % 10 = 5 then 500 when i % 10 = 7 then 30 else -30 end,
    1000000,
    case when i % 10 = 0 then 'grant' when i % 10 = 5 then 'purchase' when i % 10 = 7 then 'refund' else 'charge' end,
    'bench', now() - (i::float8 / ${ENTRIES}) * interval '365 days'
  from generate_series(1, ${ENTRIES}) i`.execute(db)
// 12,500 generations of 8 items
await sql`insert into generations (id, user_id, status, mode, request, total_items, price_per_item,
    credits_charged, charge_entry_id, created_at)
  select gen_random_uuid(), ${userId}, 'succeeded', 'library', '{}'::jsonb, 8, 30, 240,
    (select id from ledger_entries where user_id = ${userId} and seq = 1),
    now() - (g::float8 / ${ITEMS / 8}) * interval '365 days'
  from generate_series(1, ${ITEMS / 8}) g`.execute(db)
await sql`insert into generation_items (id, generation_id, user_id, key, pose_id, variation, status,
    enqueued_at, finished_at)
  select gen_random_uuid(), g.id, ${userId}, p.ids[1 + (v + g.n) % 500] || '-v' || v, p.ids[1 + (v + g.n) % 500], v,
    case when (v + g.n) % 20 = 0 then 'failed' when (v + g.n) % 20 = 1 then 'cancelled' else 'succeeded' end,
    g.created_at, g.created_at + interval '20 seconds'
  from (select id, created_at, row_number() over () as n from generations where user_id = ${userId}) g,
    generate_series(0, 7) v,
    (select array_agg(id) as ids from (select id from poses order by id limit 500) s) p`.execute(db)
// the baseline's indexes (sql/0009's, dropped by sql/0012 when the rollups came)
for (const index of STATS_SOURCE_INDEXES) await index.execute(db)
// VACUUM sets the visibility map, as autovacuum would: index-only scans skip the heap
await sql`vacuum analyze`.execute(db)
console.log(
  `\n${ENTRIES} ledger entries and ${ITEMS} items in ${((performance.now() - t1) / 1000).toFixed(1)} s`,
)

const inst = await buildInstance(
  loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: url,
    JWT_SECRET: 'bench-secret-that-is-long-enough-0123456789',
    MIGRATE_ON_START: 'false',
    RENDER_CONCURRENCY: '0',
    RENDER_SWEEP_MS: '600000', // the sweeper's scans of 100,000 items are not what is measured
    DATA_DIR: '/tmp/atelier-bench-library',
  }),
  log,
)
const token = await inst.tokens.sign(userId, 'user')
const statsOver = (query: string) => async () => {
  const res = await inst.app.handle(
    new Request(`http://localhost/v1/stats/me${query}`, {
      headers: { authorization: `Bearer ${token}` },
    }),
  )
  if (res.status !== 200) throw new Error(`stats: ${res.status} ${await res.text()}`)
  await res.json()
}
const today = new Date().toISOString().slice(0, 10)
const yearAgo = new Date(Date.now() - 365 * 86_400_000).toISOString().slice(0, 10)
const statsRows: Record<string, string | number>[] = []
for (const [what, query, range] of [
  ['default (last 30 days)', '', readRange({})],
  ['366 days (every row)', `?from=${yearAgo}&to=${today}`, readRange({ from: yearAgo, to: today })],
] as const) {
  const rollups = await makeStats({ db }).forUser(userId, range)
  const source = await sourceStats(db, userId, range)
  if (JSON.stringify(rollups) !== JSON.stringify(source))
    throw new Error(`stats ${what}: the rollups disagree with the source rows`)
  if (rollups.images.succeeded === 0) throw new Error(`stats ${what}: no history in range`)
  // REPEAT rounds, so p99 is not simply the slowest of a few
  const http = await time(statsOver(query))
  const indexed = await time(() => makeStats({ db }).forUser(userId, range))
  const baseline = await time(() => sourceStats(db, userId, range), STATS_REPEAT)
  statsRows.push({
    range: what,
    'HTTP p50 ms': http.p50,
    'HTTP p99 ms': http.p99,
    'SQL p50 ms': indexed.p50,
    'SQL p99 ms': indexed.p99,
    'source rows p50 ms': baseline.p50,
    'source rows p99 ms': baseline.p99,
    'p50 speed-up': `${(baseline.p50 / indexed.p50).toFixed(1)}×`,
  })
}
console.log(
  `\n### GET /v1/stats/me, ${ENTRIES.toLocaleString('en')} ledger entries and ${ITEMS.toLocaleString('en')} items (target p99 < 50 ms)\n`,
)
console.log(table(statsRows))
console.log(
  '\n(SQL: the five statements over the rollups, in parallel on the pool; source rows: the same figures from ledger_entries, generation_items and generations with covering indexes, in parallel on the pool; HTTP: GET /v1/stats/me through app.handle)',
)

await inst.close()
await drop()
