/**
 * bun run bench:generations
 *  1. Images per second through the whole pipeline (accept → queue → claim →
 *     render → thumbnail → store → outcome through the actor) with the local
 *     renderer at RENDER_CONCURRENCY = cores, against the same renderer called
 *     in a bare loop with the same parallelism, in the same run.
 *  2. POST /v1/generations acceptance over real HTTP with rendering paused
 *     (RENDER_CONCURRENCY=0): requests/s and latency percentiles.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { loadConfig } from '../src/config/config'
import { makeLocalRenderer } from '../src/generation/renderers/local'
import { thumbnail } from '../src/media/images'
import { makeLocalStorage } from '../src/media/storage-local'
import { makeLogger } from '../src/obs/logger'
import { buildInstance } from '../src/server'
import { benchDatabase, closedLoop, summarize, table } from './support'

const CORES = navigator.hardwareConcurrency
const IMAGES = Number(process.env.BENCH_IMAGES ?? 96)
const SIZE = Number(process.env.BENCH_SIZE ?? 1024)
const POSTS = Number(process.env.BENCH_POSTS ?? 2000)
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 64)

const { url, database, drop } = await benchDatabase(4)
const dataDir = mkdtempSync(join(tmpdir(), 'atelier-bench-'))
const log = makeLogger({ level: 'silent', pretty: false })
const poses = (
  await sql<{
    id: string
    name: string
    keypoints: [number, number, number][]
  }>`select id, name, keypoints from poses order by name limit 12`.execute(database.db)
).rows
const env = (extra: Record<string, string>) =>
  loadConfig({
    DATABASE_URL: url,
    DATA_DIR: dataDir,
    MIGRATE_ON_START: 'false',
    JWT_SECRET: 'bench-secret-bench-secret-bench-secret!',
    RENDER_SIZE: String(SIZE),
    MAX_ACTIVE_GENERATIONS: '10000',
    MAX_IMAGES_PER_HOUR: '1000000',
    ...extra,
  })

/**
 * The local renderer in a bare loop with the pipeline's parallelism; with
 * `store`, also the rest of the per-image work (thumbnail, storage), still
 * with no queue, actor or database.
 */
async function bareLoop(store: boolean) {
  const renderer = makeLocalRenderer()
  const storage = makeLocalStorage(join(dataDir, 'bare'))
  const signal = new AbortController().signal
  const t0 = performance.now()
  await closedLoop(CORES, IMAGES, async (i) => {
    const input = {
      generationId: 'bench',
      itemKey: `k${i}`,
      mode: 'library' as const,
      variation: i % 8,
      pose: poses[i % poses.length],
      size: SIZE,
    }
    const out = await renderer.render(input, signal)
    if (!store) return
    const thumb = await thumbnail(out.bytes)
    await storage.put(`bare/${i}.png`, out.bytes, 'image/png')
    await storage.put(`bare/${i}-thumb.webp`, thumb, 'image/webp')
  })
  await renderer.close()
  return IMAGES / ((performance.now() - t0) / 1000)
}

async function pipeline() {
  const inst = await buildInstance(
    env({
      RENDER_CONCURRENCY: process.env.BENCH_CONCURRENCY ?? String(CORES),
      ADMIN_EMAILS: 'bench@example.com',
    }),
    log,
  )
  const userId = Bun.randomUUIDv7()
  await database.db
    .insertInto('users')
    .values({ id: userId, email: 'p@bench', password_hash: 'x', role: 'user' })
    .execute()
  await inst.credits.apply(userId, {
    kind: 'grant',
    amount: IMAGES * 30,
    reason: 'bench',
    key: 'bench',
  })
  const t0 = performance.now()
  const per = 8
  const ids: string[] = []
  for (let i = 0; i < IMAGES / per; i++)
    ids.push(
      (
        await inst.generations.accept(
          userId,
          { mode: 'library', poseIds: [poses[i % poses.length]!.id], variations: per },
          `g${i}`,
        )
      ).id,
    )
  for (;;) {
    const { rows } = await sql<{
      n: number
    }>`select count(*)::int as n from generations where user_id = ${userId} and finished_at is null`.execute(
      database.db,
    )
    if (rows[0]!.n === 0) break
    await Bun.sleep(20) // polling the database is the measurement here, not a test synchronization
  }
  const rate = IMAGES / ((performance.now() - t0) / 1000)
  const { rows } = await sql<{
    n: number
  }>`select count(*)::int as n from generation_items where user_id = ${userId} and status = 'succeeded'`.execute(
    database.db,
  )
  await inst.close()
  if (rows[0]!.n !== IMAGES) throw new Error(`only ${rows[0]!.n} of ${IMAGES} images succeeded`)
  return rate
}

async function acceptance() {
  const inst = await buildInstance(env({ RENDER_CONCURRENCY: '0' }), log)
  const server = inst.app.listen({ port: 0, hostname: '127.0.0.1' }).server!
  const base = `http://127.0.0.1:${server.port}`
  const users = await Promise.all(
    Array.from({ length: CLIENTS }, async (_, i) => {
      const res = await fetch(`${base}/v1/auth/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: `c${i}@bench.io`, password: 'benchmark password' }),
      })
      const { user, token } = (await res.json()) as { user: { id: string }; token: string }
      await inst.credits.apply(user.id, {
        kind: 'grant',
        amount: 1_000_000,
        reason: 'bench',
        key: 'bench',
      })
      return token
    }),
  )
  const sample = await closedLoop(CLIENTS, POSTS, async (i) => {
    const res = await fetch(`${base}/v1/generations`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${users[i % CLIENTS]}`,
        'idempotency-key': `post-${i}`,
      },
      body: JSON.stringify({ mode: 'text', prompt: 'a benchmark picture', variations: 2 }),
    })
    if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${await res.text()}`)
    await res.arrayBuffer()
  })
  server.stop(true)
  await inst.close()
  return summarize(sample)
}

try {
  const bare = await bareLoop(false)
  const bareWork = await bareLoop(true)
  const piped = await pipeline()
  const accept = await acceptance()
  process.stdout.write(
    `cores=${CORES} images=${IMAGES} size=${SIZE}px\n` +
      table([
        { path: 'bare renderer loop', 'images/s': bare },
        { path: 'bare render + thumbnail + store loop', 'images/s': bareWork },
        { path: 'whole pipeline', 'images/s': piped },
        { path: 'pipeline / bare renderer', 'images/s': `${(piped / bare).toFixed(2)}×` },
        { path: 'pipeline / bare image work', 'images/s': `${(piped / bareWork).toFixed(2)}×` },
      ]) +
      `\n\nPOST /v1/generations, rendering paused, ${CLIENTS} clients, ${POSTS} requests\n` +
      table([
        { 'requests/s': Math.round(accept.opsPerSec), 'p50 ms': accept.p50, 'p99 ms': accept.p99 },
      ]) +
      '\n',
  )
} finally {
  await drop()
  rmSync(dataDir, { recursive: true, force: true })
}
