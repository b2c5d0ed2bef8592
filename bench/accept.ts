/**
 * bun run bench:accept — POST /v1/generations accepted per second with rendering paused
 * (RENDER_CONCURRENCY=0), against a real server process (`bun src/server.ts`, with Redis:
 * the production path, outbox relay included); this process is only the HTTP client, so the
 * server's CPU is its own. BENCH_USERS users, one closed-loop client each (64), BENCH_POSTS
 * requests (4000), each with its own Idempotency-Key, 2 variations of a text prompt.
 * Baseline in the same run: `select 1` round trips through the same server's health check
 * would measure HTTP only, so the figure printed beside is the single-statement `UPDATE`
 * rate of BENCH_USERS clients straight to Postgres (what one commit per request costs here).
 *
 * Profiles, when asked:
 *   BENCH_CPU_PROF=1       the server runs under Bun's CPU profiler; its top functions by
 *                          self time are printed (the .cpuprofile stays in the printed dir)
 *   BENCH_PG_STATEMENTS=1  pg_stat_statements over the measured run: calls, mean ms, rows
 *                          per call, share of execution time. It must be preloaded in the
 *                          Postgres BENCH_DATABASE_URL points at; `bun bench/private-postgres.ts`
 *                          starts one that has it (the shared one cannot be restarted).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { benchDatabase, closedLoop, resetStatements, statements, summarize, table } from './support'

const USERS = Number(process.env.BENCH_USERS ?? 64)
const POSTS = Number(process.env.BENCH_POSTS ?? 4000)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 400)
const CPU_PROF = process.env.BENCH_CPU_PROF === '1'
const PG_STATEMENTS = process.env.BENCH_PG_STATEMENTS === '1'
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const ROOT = join(import.meta.dir, '..')
const ADMIN = 'admin@bench.io'

function freePort() {
  const probe = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const port = probe.port!
  probe.stop(true)
  return port
}

async function startServer(databaseUrl: string, dataDir: string, profDir: string) {
  const port = freePort()
  const flags = CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []
  const proc = Bun.spawn([process.execPath, ...flags, 'src/server.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      REDIS_URL,
      REDIS_PREFIX: `atelier-bench-accept:${crypto.randomUUID().slice(0, 8)}:`,
      MIGRATE_ON_START: 'false',
      JWT_SECRET: 'bench-secret-bench-secret-bench-secret!',
      MEDIA_URL_SECRET: 'bench-media-secret-bench-media-secret!',
      DATA_DIR: dataDir,
      RENDER_CONCURRENCY: '0',
      MAX_ACTIVE_GENERATIONS: '10000',
      MAX_IMAGES_PER_HOUR: '1000000',
      LOG_LEVEL: 'warn',
      ADMIN_EMAILS: ADMIN,
    },
    stdout: 'inherit',
    stderr: 'inherit',
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  while ((await fetch(`${url}/health/ready`).catch(() => undefined))?.status !== 200) {
    if (proc.exitCode !== null) throw new Error(`the server exited with ${proc.exitCode}`)
    if (Date.now() > deadline) throw new Error('the server was not ready within 30 s')
    await Bun.sleep(50)
  }
  return { proc, url }
}

async function register(url: string, i: number) {
  const res = await fetch(`${url}/v1/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: `accept-${i}@bench.io`, password: 'benchmark password' }),
  })
  if (res.status !== 201) throw new Error(`register answered ${res.status}`)
  const { user, token } = (await res.json()) as { user: { id: string }; token: string }
  return { id: user.id, token }
}

function posts(url: string, tokens: string[], total: number, tag: string) {
  return closedLoop(tokens.length, total, async (i) => {
    const res = await fetch(`${url}/v1/generations`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${tokens[i % tokens.length]}`,
        'idempotency-key': `${tag}-${i}`,
      },
      body: JSON.stringify({ mode: 'text', prompt: 'a benchmark picture', variations: 2 }),
    })
    if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${await res.text()}`)
    await res.arrayBuffer()
  })
}

/** USERS clients, each `UPDATE` of its own row in its own transaction: one commit each. */
async function baseline(url: string, total: number) {
  const sql = postgres(url, { max: USERS, onnotice: () => {} })
  await sql`create table if not exists bench_accept_rows (id int primary key, n int not null)`
  await sql`insert into bench_accept_rows select g, 0 from generate_series(0, ${USERS - 1}) g on conflict do nothing`
  const sample = await closedLoop(USERS, total, (i) =>
    sql`update bench_accept_rows set n = n + 1 where id = ${i % USERS}`.then(() => true),
  )
  await sql.end()
  return summarize(sample)
}

/**
 * A .cpuprofile (Chrome's format, as Bun writes it) summed per function: the top by self
 * time, and Atelier's own functions (src/) by inclusive time (each sample counted once per
 * function on its stack), both as shares of the busy samples (idle excluded).
 */
function profileTables(dir: string, rows = 14) {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  if (!file) return 'no .cpuprofile written'
  type Node = {
    id: number
    hitCount?: number
    children?: number[]
    callFrame: { functionName: string; url: string; lineNumber: number }
  }
  const { nodes } = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: Node[] }
  const parent = new Map<number, Node>()
  for (const n of nodes) for (const c of n.children ?? []) parent.set(c, n)
  const where = (n: Node) => n.callFrame.url.replace(`file://${ROOT}/`, '').replace(`${ROOT}/`, '')
  const key = (n: Node) =>
    `${n.callFrame.functionName || '(anonymous)'} ${where(n)}:${n.callFrame.lineNumber + 1}`
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let busy = 0
  for (const n of nodes) {
    const hits = n.hitCount ?? 0
    if (!hits || n.callFrame.functionName === '(idle)') continue
    busy += hits
    self.set(key(n), (self.get(key(n)) ?? 0) + hits)
    const seen = new Set<string>()
    for (let m: Node | undefined = n; m; m = parent.get(m.id))
      if (where(m).startsWith('src/')) seen.add(key(m))
    for (const k of seen) inclusive.set(k, (inclusive.get(k) ?? 0) + hits)
  }
  const top = (m: Map<string, number>, label: string) =>
    table(
      [...m.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, rows)
        .map(([fn, hits]) => ({ function: fn, [label]: `${((hits / busy) * 100).toFixed(1)}%` })),
    )
  return (
    `${join(dir, file)} (${busy} busy samples)\n${top(self, 'self')}\n\n` +
    `src/ functions by inclusive time\n${top(inclusive, 'inclusive')}`
  )
}

const { url: databaseUrl, drop } = await benchDatabase(2)
const dataDir = mkdtempSync(join(tmpdir(), 'atelier-bench-accept-'))
const profDir = mkdtempSync(join(tmpdir(), 'atelier-accept-prof-'))
const inspect = postgres(databaseUrl, { max: 1, onnotice: () => {} })
let server: Awaited<ReturnType<typeof startServer>> | undefined
try {
  server = await startServer(databaseUrl, dataDir, profDir)
  const registered = await Promise.all(
    Array.from({ length: USERS }, (_, i) => register(server!.url, i)),
  )
  const ids = registered.map((r) => r.id)
  const tokens = registered.map((r) => r.token)
  const admin = await fetch(`${server.url}/v1/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN, password: 'benchmark password' }),
  }).then((r) => r.json() as Promise<{ token: string }>)
  for (const userId of ids) {
    const res = await fetch(`${server.url}/v1/admin/credits/grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.token}` },
      body: JSON.stringify({ userId, amount: 100_000_000, reason: 'bench' }),
    })
    if (res.status !== 201) throw new Error(`grant answered ${res.status}: ${await res.text()}`)
  }
  await posts(server.url, tokens, WARMUP, 'warm')
  if (PG_STATEMENTS) {
    await resetStatements(inspect)
  }
  const accept = summarize(await posts(server.url, tokens, POSTS, 'run'))
  const pg = PG_STATEMENTS ? await statements(inspect) : ''
  const base = await baseline(databaseUrl, POSTS)
  server.proc.kill('SIGTERM')
  await server.proc.exited
  process.stdout.write(
    `POST /v1/generations, rendering paused, ${USERS} users × 1 client, ${POSTS} requests` +
      ` (after ${WARMUP} unmeasured), server in its own process\n` +
      table([
        {
          path: 'POST /v1/generations',
          'requests/s': Math.round(accept.opsPerSec),
          'p50 ms': accept.p50,
          'p99 ms': accept.p99,
        },
        {
          path: `single-statement UPDATE, ${USERS} clients (baseline)`,
          'requests/s': Math.round(base.opsPerSec),
          'p50 ms': base.p50,
          'p99 ms': base.p99,
        },
      ]) +
      `\naccepts / single UPDATE: ${(accept.opsPerSec / base.opsPerSec).toFixed(2)}×` +
      `   targets: ≥ 1,000 accepts/s ${accept.opsPerSec >= 1000 ? 'met' : 'NOT met'},` +
      ` p99 ≤ 100 ms ${accept.p99 <= 100 ? 'met' : 'NOT met'}\n` +
      (pg ? `\npg_stat_statements over the measured run\n${pg}\n` : '') +
      (CPU_PROF ? `\nserver CPU profile, top self time\n${profileTables(profDir)}\n` : ''),
  )
} finally {
  if (server && server.proc.exitCode === null) server.proc.kill('SIGKILL')
  await inspect.end()
  await drop()
  rmSync(dataDir, { recursive: true, force: true })
  if (!CPU_PROF) rmSync(profDir, { recursive: true, force: true })
}
