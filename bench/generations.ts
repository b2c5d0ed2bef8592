/**
 * bun run bench:generations
 *  1. Images per second through the whole pipeline (accept → queue → claim →
 *     render → store → outcome through the actor → event) with the local
 *     renderer at RENDER_CONCURRENCY = cores, against the same renderer called
 *     in a bare loop with the same parallelism on the same images, in the
 *     same run. The local renderer draws each image and its WebP thumbnail
 *     (from the same vector picture); a second bare loop also does the
 *     storage writes. After an unmeasured warm-up the three take turns
 *     BENCH_ROUNDS times (default 3) and each reports its median. A last row
 *     shows what scaling the PNG down with sharp instead would cost.
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
import { buildInstance, type Instance } from '../src/server'
import { benchDatabase, closedLoop, median, summarize, table } from './support'

const CORES = navigator.hardwareConcurrency
const IMAGES = Number(process.env.BENCH_IMAGES ?? 96)
const SIZE = Number(process.env.BENCH_SIZE ?? 1024)
const POSTS = Number(process.env.BENCH_POSTS ?? 2000)
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 64)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
/** Images per generation in the pipeline run. */
const PER = 8

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
 * `store`, also the storage writes, still with no queue, actor or database;
 * with `scale`, the thumbnail scaled down from the PNG (what a renderer
 * without its own thumbnail costs) instead of the renderer's.
 */
async function bareLoop(store: boolean, scale = false, images = IMAGES) {
  const renderer = makeLocalRenderer()
  const storage = makeLocalStorage(join(dataDir, 'bare'))
  const signal = new AbortController().signal
  const t0 = performance.now()
  await closedLoop(CORES, images, async (i) => {
    const input = {
      generationId: 'bench',
      itemKey: `k${i}`,
      mode: 'library' as const,
      // the pipeline's images exactly: generation g renders pose g with variations 0..PER-1
      variation: i % PER,
      pose: poses[Math.floor(i / PER) % poses.length],
      size: SIZE,
    }
    const out = await renderer.render(input, signal)
    if (!store) return
    const thumb = scale ? await thumbnail(out.bytes) : out.thumbnail!.bytes
    await Promise.all([
      storage.put(`bare/${i}.png`, out.bytes, 'image/png'),
      storage.put(`bare/${i}-thumb.webp`, thumb, 'image/webp'),
    ])
  })
  await renderer.close()
  return images / ((performance.now() - t0) / 1000)
}

/** One round of the whole pipeline on `inst`, for a new user: IMAGES / PER generations of PER images. */
async function pipeline(inst: Instance, round: number) {
  const userId = Bun.randomUUIDv7()
  await database.db
    .insertInto('users')
    .values({ id: userId, email: `p${round}@bench`, password_hash: 'x', role: 'user' })
    .execute()
  await inst.credits.apply(userId, {
    kind: 'grant',
    amount: IMAGES * 30,
    reason: 'bench',
    key: 'bench',
  })
  // the end is the last generation.finished event: awaited, not polled, so the
  // measurement adds no queries of its own to the database the pipeline uses
  let left = IMAGES / PER
  const { promise: finished, resolve } = Promise.withResolvers<void>()
  const unsubscribe = inst.events.subscribe(userId, (e) => {
    if (e.name === 'generation.finished' && --left === 0) resolve()
  })
  const t0 = performance.now()
  for (let i = 0; i < IMAGES / PER; i++)
    await inst.generations.accept(
      userId,
      { mode: 'library', poseIds: [poses[i % poses.length]!.id], variations: PER },
      { commandKey: `r${round}g${i}` },
    )
  await finished
  const rate = IMAGES / ((performance.now() - t0) / 1000)
  unsubscribe()
  const { rows } = await sql<{
    n: number
  }>`select count(*)::int as n from generation_items where user_id = ${userId} and status = 'succeeded'`.execute(
    database.db,
  )
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
  // warm-up, unmeasured: module loading, JIT, libvips and the first database connections
  await bareLoop(true, false, 2 * CORES)
  const renderer = await buildInstance(
    env({
      RENDER_CONCURRENCY: process.env.BENCH_CONCURRENCY ?? String(CORES),
      ADMIN_EMAILS: 'bench@example.com',
    }),
    log,
  )
  // the paths take turns, ROUNDS times, and each reports its median: a noisy
  // neighbour or a GC pause hits all of them alike instead of one path's whole run
  const runs = { bare: [] as number[], bareWork: [] as number[], piped: [] as number[] }
  await pipeline(renderer, 0)
  for (let round = 1; round <= ROUNDS; round++) {
    runs.bare.push(await bareLoop(false))
    runs.bareWork.push(await bareLoop(true))
    runs.piped.push(await pipeline(renderer, round))
  }
  await renderer.close()
  const scaled = await bareLoop(true, true)
  const [bare, bareWork, piped] = [median(runs.bare), median(runs.bareWork), median(runs.piped)]
  const accept = await acceptance()
  process.stdout.write(
    `cores=${CORES} images=${IMAGES} size=${SIZE}px, medians of ${ROUNDS} rounds\n` +
      table([
        { path: 'bare renderer loop (image + thumbnail)', 'images/s': bare },
        { path: 'bare render + store loop', 'images/s': bareWork },
        { path: 'whole pipeline', 'images/s': piped },
        { path: 'pipeline / bare renderer', 'images/s': `${(piped / bare).toFixed(2)}×` },
        { path: 'pipeline / bare render + store', 'images/s': `${(piped / bareWork).toFixed(2)}×` },
        { path: 'bare render + scaled-down thumbnail + store (once)', 'images/s': scaled },
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
