import { afterAll } from 'bun:test'
import { join } from 'node:path'
import type { TestEnv } from './env'

/**
 * Real server processes (`bun src/server.ts`) for tests that need more than
 * one instance, a real listener, signals, process exits or faults between
 * processes. Each boots on a free port and is awaited until /health/ready
 * answers 200; its JSON log lines are collected and `next(msg)` awaits one.
 * Every wait has a deadline that fails with what the process logged.
 */
export type LogLine = { msg: string; [key: string]: unknown }

export type ServerProcess = Awaited<ReturnType<typeof startServerProcess>>

const ROOT = join(import.meta.dir, '..', '..')
const BOOT_MS = 20_000
const spawned = new Set<ReturnType<typeof Bun.spawn>>()

/** A port nobody listens on right now: bind port 0, note it, let it go. */
export function freePort() {
  const probe = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const port = probe.port!
  probe.stop(true)
  return port
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)),
        ms,
      )
    }),
  ]).finally(() => clearTimeout(timer))
}

/**
 * What a server of this test file needs to boot: its database, its Redis and
 * key prefix, secrets; `overrides` win. The tests that put a fault proxy in
 * front of Postgres or Redis override DATABASE_URL or REDIS_URL.
 */
export function serverEnv(env: TestEnv, overrides: Record<string, string> = {}) {
  return {
    DATABASE_URL: env.databaseUrl,
    REDIS_URL: env.services.redisUrl,
    REDIS_PREFIX: env.redisPrefix,
    JWT_SECRET: 'process-test-secret-that-is-long-enough-0123456789',
    MEDIA_URL_SECRET: 'process-test-media-secret-long-enough-0123456789',
    DATA_DIR: env.dataDir,
    ...overrides,
  }
}

/** Servers of this test file, booted with `serverEnv(env, overrides)` and killed in afterAll. */
export function serverProcesses(env: TestEnv) {
  afterAll(killServerProcesses, 20_000)
  return {
    start: (overrides: Record<string, string> = {}) =>
      startServerProcess(serverEnv(env, overrides)),
  }
}

function collect(stream: ReadableStream<Uint8Array>) {
  const lines: LogLine[] = []
  const waiters: { match: (l: LogLine) => boolean; resolve: (line: LogLine) => void }[] = []
  let ended!: () => void
  const closed = new Promise<void>((r) => (ended = r))
  void (async () => {
    let buffer = ''
    const decoder = new TextDecoder()
    const reader = stream.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      buffer += decoder.decode(value, { stream: true })
      let nl
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const text = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        let line: LogLine
        try {
          line = JSON.parse(text)
        } catch {
          line = { msg: text }
        }
        lines.push(line)
        for (const w of waiters.filter((w) => w.match(line))) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(line)
        }
      }
    }
    ended()
  })()
  return { lines, closed, waiters }
}

export async function startServerProcess(env: Record<string, string>, bootMs = BOOT_MS) {
  const port = freePort()
  const proc = Bun.spawn([process.execPath, 'src/server.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'info',
      MIGRATE_ON_START: 'false',
      ...env,
    },
    stdout: 'pipe',
    // nothing is expected here; if the process fails to boot, its reason shows in the test output
    stderr: 'inherit',
  })
  spawned.add(proc)
  const log = collect(proc.stdout)
  const url = `http://127.0.0.1:${port}`

  function next(msg: string | ((l: LogLine) => boolean), ms = 10_000): Promise<LogLine> {
    const match = typeof msg === 'string' ? (l: LogLine) => l.msg === msg : msg
    const seen = log.lines.find(match)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(`${ms} ms passed`), ms)
      const waiter = {
        match,
        resolve: (line: LogLine) => {
          clearTimeout(timer)
          resolve(line)
        },
      }
      function fail(why: string) {
        const i = log.waiters.indexOf(waiter)
        if (i < 0) return
        log.waiters.splice(i, 1)
        clearTimeout(timer)
        const tail = log.lines.slice(-30).map((l) => JSON.stringify(l))
        reject(
          new Error(`${why} waiting for log "${String(msg)}"; last lines:\n${tail.join('\n')}`),
        )
      }
      log.waiters.push(waiter)
      void log.closed.then(() => fail('the process ended'))
    })
  }

  async function ready(ms = 10_000) {
    const deadline = Date.now() + ms
    for (;;) {
      const res = await fetch(`${url}/health/ready`).catch(() => undefined)
      if (res?.status === 200) return
      if (Date.now() > deadline)
        throw new Error(`${url} not ready within ${ms} ms: ${res?.status ?? 'no answer'}`)
      await Bun.sleep(50)
    }
  }

  await next('listening', bootMs)
  // listening is logged once the socket is bound; readiness also needs the dependencies
  await ready(bootMs)
  const instance = String(log.lines.find((l) => l.msg === 'listening')?.instance ?? '')
  return { proc, url, port, instance, lines: log.lines, closed: log.closed, next, ready }
}

/** Kills every server this file started that is still running (afterAll). */
export async function killServerProcesses() {
  for (const proc of spawned) {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGCONT')
      proc.kill('SIGKILL')
    }
  }
  await Promise.all([...spawned].map((p) => p.exited))
  spawned.clear()
}
