import { afterAll } from 'bun:test'
import { join } from 'node:path'
import type { TestEnv } from './env'

/**
 * Real server processes (`bun src/server.ts`) for tests that need more than
 * one instance or a real listener: each boots against the test file's
 * database and Redis prefix, is awaited until /health/ready answers 200, and
 * is killed in afterAll. Every wait has a deadline and says what it waited for.
 */
const ROOT = join(import.meta.dir, '..', '..')
const BOOT_MS = 20_000

export type ServerProcess = Awaited<ReturnType<ReturnType<typeof serverProcesses>['start']>>

export function serverProcesses(env: TestEnv) {
  const spawned: ReturnType<typeof Bun.spawn>[] = []
  afterAll(async () => {
    for (const proc of spawned) if (proc.exitCode === null) proc.kill('SIGKILL')
    await Promise.all(spawned.map((p) => p.exited))
  })

  async function start(overrides: Record<string, string>) {
    const proc = Bun.spawn([process.execPath, 'src/server.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: '0',
        DATABASE_URL: env.databaseUrl,
        REDIS_URL: env.services.redisUrl,
        REDIS_PREFIX: env.redisPrefix,
        MIGRATE_ON_START: 'false',
        JWT_SECRET: 'process-test-secret-that-is-long-enough-0123456789',
        MEDIA_URL_SECRET: 'process-test-media-secret-long-enough-0123456789',
        LOG_LEVEL: 'info',
        ...overrides,
      },
      stdout: 'pipe',
      // nothing is expected here; if the process fails to boot, its reason shows in the test output
      stderr: 'inherit',
    })
    spawned.push(proc)
    const listening = await within(
      firstLine(proc.stdout, 'listening'),
      BOOT_MS,
      'the server to log "listening"',
    )
    const url = String(listening.url)
    await within(
      (async () => {
        while ((await fetch(`${url}/health/ready`)).status !== 200) await Bun.sleep(20)
      })(),
      BOOT_MS,
      `${url}/health/ready to answer 200`,
    )
    return { proc, url, port: Number(new URL(url).port) }
  }

  return { start }
}

/** Resolves with the first JSON log line whose msg is `msg`; rejects if the stream ends first. */
async function firstLine(stream: ReadableStream<Uint8Array>, msg: string) {
  const decoder = new TextDecoder()
  const lines: string[] = []
  let buffer = ''
  const reader = stream.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    buffer += decoder.decode(value, { stream: true })
    let nl
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const text = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      lines.push(text)
      try {
        const line = JSON.parse(text) as { msg?: string; [k: string]: unknown }
        if (line.msg === msg) {
          // keep draining so the child never blocks on a full pipe
          void (async () => {
            while (!(await reader.read()).done);
          })()
          return line
        }
      } catch {
        // not JSON: kept for the message below
      }
    }
  }
  throw new Error(`process ended without logging "${msg}"; it logged:\n${lines.join('\n')}`)
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
