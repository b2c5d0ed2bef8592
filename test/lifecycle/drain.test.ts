import { afterAll, describe, expect, it } from 'bun:test'
import { useTestEnv } from '../support/env'
import { killServerProcesses, serverEnv, startServerProcess } from '../support/server-process'

// a child process boots in about a second; `bun test` alone gives a test 5 s
const SLOW_MS = 30_000

/**
 * A real server process under SIGTERM: it turns not-ready at once, finishes the
 * request it holds, runs its drain, and exits 0 within DRAIN_TIMEOUT_MS.
 */
const env = await useTestEnv()
const DRAIN_TIMEOUT_MS = 5000
const ADMIN = 'drain-admin@example.com'
const PASSWORD = 'a long password'
afterAll(killServerProcesses, 20_000)

async function startServer(drainTimeoutMs = DRAIN_TIMEOUT_MS) {
  const server = await startServerProcess(
    serverEnv(env, { ADMIN_EMAILS: ADMIN, DRAIN_TIMEOUT_MS: String(drainTimeoutMs) }),
  )
  return { proc: server.proc, log: server, url: server.url }
}

async function post(url: string, body: unknown, token?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  return fetch(url, { method: 'POST', headers, body: JSON.stringify(body) })
}

/** The admin's token (registered by whichever test runs first); admin stats show in-flight requests. */
async function adminToken(url: string) {
  const reg = await post(`${url}/v1/auth/register`, { email: ADMIN, password: PASSWORD })
  const res =
    reg.status === 409
      ? await post(`${url}/v1/auth/login`, { email: ADMIN, password: PASSWORD })
      : reg
  expect(res.status).toBeOneOf([200, 201])
  return ((await res.json()) as { token: string }).token
}

/** A login whose body the test writes piece by piece: the request stays open until `finish`. */
function openLogin(url: string, email: string, password: string) {
  const bytes = new TextEncoder()
  let controller!: ReadableStreamDefaultController<Uint8Array>
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) })
  controller.enqueue(bytes.encode(`{"email":${JSON.stringify(email)},`))
  const response = fetch(`${url}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    duplex: 'half',
  } as RequestInit)
  return {
    response,
    finish() {
      controller.enqueue(bytes.encode(`"password":${JSON.stringify(password)}}`))
      controller.close()
    },
    abort() {
      controller.error(new Error('abandoned by the test'))
    },
  }
}

/** Waits until the server counts `n` requests in flight besides the one asking. */
async function untilInflight(url: string, token: string, n: number) {
  for (let i = 0; i < 200; i++) {
    const res = await fetch(`${url}/v1/admin/stats`, {
      headers: { authorization: `Bearer ${token}` },
    })
    const stats = (await res.json()) as { instance: { inflightRequests: number } }
    if (stats.instance.inflightRequests - 1 >= n) return
  }
  throw new Error(`the server never had ${n} request(s) in flight`)
}

/** /health/ready while draining: 503 in API.md's shape, or no listener at all. */
async function readiness(url: string) {
  try {
    const res = await fetch(`${url}/health/ready`)
    return { status: res.status, json: (await res.json()) as any }
  } catch (error) {
    return { status: 'refused' as const, error }
  }
}

describe('drain on SIGTERM', () => {
  it(
    'turns not-ready, completes the in-flight request, and exits 0 within the budget',
    async () => {
      const { proc, log, url } = await startServer()
      const token = await adminToken(url)

      const inflight = openLogin(url, ADMIN, PASSWORD)
      await untilInflight(url, token, 1)

      const signalledAt = performance.now()
      proc.kill('SIGTERM')
      const draining = await log.next('draining')
      expect(draining).toMatchObject({ signal: 'SIGTERM', budgetMs: DRAIN_TIMEOUT_MS })

      const ready = await readiness(url)
      if (ready.status !== 'refused') {
        expect(ready.status).toBe(503)
        expect(ready.json.error.code).toBe('unavailable')
      }
      // the drain waits for the open request: the process must still be running
      expect(proc.exitCode).toBeNull()
      expect(log.lines.some((l) => l.msg === 'drained')).toBe(false)

      inflight.finish()
      const res = await inflight.response
      expect(res.status).toBe(200)
      const session = (await res.json()) as { user: { email: string }; token: string }
      expect(session.user.email).toBe(ADMIN)
      expect(session.token.split('.')).toHaveLength(3)

      expect(await proc.exited).toBe(0)
      expect(performance.now() - signalledAt).toBeLessThan(DRAIN_TIMEOUT_MS)
      expect(await log.next('drained')).toMatchObject({ clean: true })
      await log.closed
      const msgs = log.lines.map((l) => l.msg)
      const loginLine = log.lines.find((l) => l.msg === 'request' && l.route === '/v1/auth/login')
      expect(loginLine).toMatchObject({ method: 'POST', status: 200 })
      // the in-flight login finished before the drain declared itself done
      expect(log.lines.indexOf(loginLine!)).toBeLessThan(msgs.indexOf('drained'))
      expect(msgs.indexOf('draining')).toBeLessThan(msgs.indexOf('drained'))
    },
    SLOW_MS,
  )

  it(
    'exits at once on a second signal',
    async () => {
      const { proc, log, url } = await startServer(60_000)
      const token = await adminToken(url)

      // an open request holds the drain, which would otherwise wait up to 60 s
      const held = openLogin(url, ADMIN, PASSWORD)
      // the process dies under it: the request fails, which is the point
      const heldSettled = held.response.then(
        () => 'answered',
        () => 'cut off',
      )
      await untilInflight(url, token, 1)
      proc.kill('SIGTERM')
      await log.next('draining')
      const secondAt = performance.now()
      proc.kill('SIGINT')
      expect(await proc.exited).toBe(1)
      expect(performance.now() - secondAt).toBeLessThan(5000)
      expect(await log.next('second signal: exiting now')).toMatchObject({ signal: 'SIGINT' })
      expect(log.lines.some((l) => l.msg === 'drained')).toBe(false)
      held.abort()
      expect(await heldSettled).toBe('cut off')
    },
    SLOW_MS,
  )
})
