/**
 * bun run bench:start — embedded mode's first start (a new DATA_DIR: the
 * database made, migrated and seeded) until /health/ready answers 200, from
 * the migrated snapshot (src/db/pglite-snapshot.ts) against initdb and every
 * migration, the baseline, in the same run: the two take turns
 * BENCH_START_ROUNDS times (default 5), each a fresh `bun src/server.ts`,
 * and each reports its median. The baseline hides the snapshot by moving
 * the cache folder aside for its turn (put back in a finally), and a warm
 * restart (the same DATA_DIR again) is measured too. Target: ≤ 2 s.
 */
import { mkdtempSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SNAPSHOT_DIR, buildSnapshot } from '../src/db/pglite-snapshot'
import { median, table } from './support'

const ROUNDS = Number(process.env.BENCH_START_ROUNDS ?? 5)
const ROOT = join(import.meta.dir, '..')
const HIDDEN = `${SNAPSHOT_DIR}.hidden`

/** Starts the server on DATA_DIR, returns ms from spawn to ready, then stops it with SIGTERM. */
async function startOnce(dataDir: string): Promise<number> {
  const probe = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const port = probe.port!
  probe.stop(true)
  const started = performance.now()
  const proc = Bun.spawn([process.execPath, 'src/server.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1' },
    stdout: 'ignore',
    stderr: 'inherit',
  })
  try {
    const deadline = started + 120_000
    for (;;) {
      const res = await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined)
      if (res?.status === 200) return performance.now() - started
      if (proc.exitCode !== null) throw new Error(`the server exited with ${proc.exitCode}`)
      if (performance.now() > deadline) throw new Error('not ready within 120 s')
      await Bun.sleep(10)
    }
  } finally {
    proc.kill('SIGTERM')
    await proc.exited
  }
}

await buildSnapshot()
const times = { snapshot: [] as number[], initdb: [] as number[], restart: [] as number[] }
for (let round = 0; round < ROUNDS; round++) {
  const dirs = [
    mkdtempSync(join(tmpdir(), 'atelier-start-')),
    mkdtempSync(join(tmpdir(), 'atelier-start-')),
  ]
  try {
    times.snapshot.push(await startOnce(dirs[0]!))
    times.restart.push(await startOnce(dirs[0]!))
    renameSync(SNAPSHOT_DIR, HIDDEN)
    try {
      times.initdb.push(await startOnce(dirs[1]!))
    } finally {
      renameSync(HIDDEN, SNAPSHOT_DIR)
    }
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
  console.log(
    `round ${round + 1}/${ROUNDS}: ${times.snapshot.at(-1)!.toFixed(0)} ms from the snapshot, ${times.initdb.at(-1)!.toFixed(0)} ms with initdb`,
  )
}
const m = {
  snapshot: median(times.snapshot),
  initdb: median(times.initdb),
  restart: median(times.restart),
}
console.log(
  table([
    {
      start: 'first, from the snapshot',
      'median ms': m.snapshot,
      'min ms': Math.min(...times.snapshot),
      'vs initdb': m.snapshot / m.initdb,
    },
    {
      start: 'first, initdb + migrations (baseline)',
      'median ms': m.initdb,
      'min ms': Math.min(...times.initdb),
      'vs initdb': 1,
    },
    {
      start: 'restart (existing DATA_DIR)',
      'median ms': m.restart,
      'min ms': Math.min(...times.restart),
      'vs initdb': m.restart / m.initdb,
    },
  ]),
)
console.log(
  `target: first start ≤ 2000 ms: ${m.snapshot <= 2000 ? 'met' : 'missed'} (${m.snapshot.toFixed(0)} ms)`,
)
