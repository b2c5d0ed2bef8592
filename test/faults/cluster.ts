import { afterAll } from 'bun:test'
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy'
import { killServerProcesses } from '../support/server-process'
import type { LoadUser } from './load'

/**
 * What the fault files share: a fault proxy in front of one dependency,
 * torn down after the servers (call `faultProxy` before `useTestEnv`, so its
 * afterAll runs first: a server still reconnecting would make the database
 * drop fail or wait), JSON calls with a deadline, and registered users.
 */
export function faultProxy() {
  let proxy: FaultProxy | undefined
  afterAll(async () => {
    await killServerProcesses()
    await proxy?.close()
  }, 20_000)
  return {
    async start(target: string) {
      const u = new URL(target)
      const port = Number(u.port || (u.protocol.startsWith('redis') ? 6379 : 5432))
      proxy = await startFaultProxy({ host: u.hostname, port })
      return proxy
    },
  }
}

/** A JSON POST with a 10 s deadline; the body is undefined when it is not JSON. */
export async function post(url: string, path: string, body: unknown, token?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const res = await fetch(`${url}${path}`, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  })
  return { status: res.status, json: (await res.json().catch(() => undefined)) as any }
}

/** Registers the admin (its email must be in ADMIN_EMAILS) and `count` users at `url`. */
export async function registerUsers(
  url: string,
  { admin, prefix, count }: { admin: string; prefix: string; count: number },
) {
  const password = 'a long password'
  const adminToken = (await post(url, '/v1/auth/register', { email: admin, password })).json
    .token as string
  const users: LoadUser[] = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const r = await post(url, '/v1/auth/register', {
        email: `${prefix}-${i}-${crypto.randomUUID()}@example.com`,
        password,
      })
      return { id: r.json.user.id as string, token: r.json.token as string }
    }),
  )
  return { adminToken, users }
}
