import { describe, expect, it } from 'bun:test'
import { useTestEnv } from '../support/env'
import { serverProcesses, within, type ServerProcess } from '../support/server-process'
import { openSocket } from '../support/ws'

/**
 * Fly.io multi-region with two real server processes that differ only in
 * FLY_REGION: `ams` is PRIMARY_REGION, `fra` is a read region.
 */
const env = await useTestEnv()
const servers = serverProcesses(env)
const WINDOW_MS = 1500
const shared = {
  PRIMARY_REGION: 'ams',
  READ_YOUR_WRITES_MS: String(WINDOW_MS),
  SIGNUP_CREDITS: '100',
  // the primary accepts generations but renders none: the events these tests await are the accept's
  RENDER_CONCURRENCY: '0',
}
const [primary, replica] = await Promise.all([
  servers.start({ ...shared, FLY_REGION: 'ams' }),
  servers.start({ ...shared, FLY_REGION: 'fra' }),
])

const PASSWORD = 'correct horse battery'
const json = { 'content-type': 'application/json' }

function register(server: ServerProcess, headers: Record<string, string> = {}) {
  return fetch(`${server.url}/v1/auth/register`, {
    method: 'POST',
    headers: { ...json, ...headers },
    body: JSON.stringify({ email: `u-${crypto.randomUUID()}@example.com`, password: PASSWORD }),
  })
}

/** Writes raw bytes to the server and resolves with the status line and headers of its answer. */
function rawRequest(server: ServerProcess, head: string) {
  return new Promise<{ status: number; headers: Map<string, string> }>((resolve, reject) => {
    let text = ''
    void Bun.connect({
      hostname: '127.0.0.1',
      port: server.port,
      socket: {
        open: (socket) => void socket.write(head),
        data(socket, chunk) {
          text += new TextDecoder().decode(chunk)
          const end = text.indexOf('\r\n\r\n')
          if (end < 0) return
          const [statusLine, ...lines] = text.slice(0, end).split('\r\n')
          const headers = new Map(
            lines.map((l) => [
              l.slice(0, l.indexOf(':')).toLowerCase(),
              l.slice(l.indexOf(':') + 1).trim(),
            ]),
          )
          resolve({ status: Number(statusLine!.split(' ')[1]), headers })
          socket.end()
        },
        close: () => reject(new Error(`connection closed before an answer; got: ${text}`)),
        error: (_, error) => reject(error),
      },
    }).catch(reject)
  })
}

describe('a read region (FLY_REGION differs from PRIMARY_REGION)', () => {
  it('answers a write with fly-replay before reading its body', async () => {
    // headers that announce 900 kB (under MAX_BODY_BYTES and Fly's 1 MB replay limit), no body
    // sent: an answer can only come from a server that decided without waiting for it
    const answer = await within(
      rawRequest(
        replica,
        'POST /v1/auth/register HTTP/1.1\r\nHost: atelier.test\r\nContent-Type: application/json\r\nContent-Length: 900000\r\n\r\n',
      ),
      3000,
      'the read region to answer a write whose body never comes',
    )
    expect(answer.status).toBe(409)
    expect(answer.headers.get('fly-replay')).toBe('region=ams')
    expect(answer.headers.get('content-length') ?? '0').toBe('0')
  })

  it('replays every mutating method, with an empty body, whatever the route', async () => {
    for (const [method, path] of [
      ['POST', '/v1/auth/login'],
      ['POST', '/v1/webhooks/payments'],
      ['POST', '/v1/generations'],
      ['PUT', '/v1/admin/library/poses/x'],
      ['PATCH', '/v1/generations/x'],
      ['DELETE', '/v1/admin/library/poses/x'],
    ] as const) {
      const res = await fetch(`${replica.url}${path}`, { method, headers: json, body: '{}' })
      expect({ method, path, status: res.status }).toEqual({ method, path, status: 409 })
      expect(res.headers.get('fly-replay')).toBe('region=ams')
      expect(await res.text()).toBe('')
    }
  })

  it('refuses a write Fly already replayed (fly-replay-src) with 503 and Retry-After, no loop', async () => {
    const email = `u-${crypto.randomUUID()}@example.com`
    const res = await fetch(`${replica.url}/v1/auth/register`, {
      method: 'POST',
      headers: {
        ...json,
        'fly-replay-src': 'instance=abc;region=lhr;t=1700000000000000',
        'x-request-id': 'replayed-write-1',
      },
      body: JSON.stringify({ email, password: PASSWORD }),
    })
    expect(res.status).toBe(503)
    expect(res.headers.get('fly-replay')).toBeNull()
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    const body = (await res.json()) as { error: Record<string, unknown> }
    expect(body.error.code).toBe('unavailable')
    expect(body.error.requestId).toBe('replayed-write-1')
    expect(body.error.message).toContain('replayed')
    // refused at the edge, so nothing was written: the email is still free
    const [row] = await env.sql`select count(*)::int as n from users where email = ${email}`
    expect(row!.n).toBe(0)
  })

  it('serves reads itself', async () => {
    const { token } = (await (await register(primary)).json()) as { token: string }
    const me = await fetch(`${replica.url}/v1/me`, {
      headers: { authorization: `Bearer ${token}` },
    })
    expect(me.status).toBe(200)
    expect(me.headers.get('fly-replay')).toBeNull()
    expect(((await me.json()) as { balance: number }).balance).toBe(100)
    const health = (await (await fetch(`${replica.url}/health`)).json()) as { region?: string }
    expect(JSON.stringify(health)).toContain('"fra"')
  })
})

describe('the primary region', () => {
  it('serves writes and reads, also a write Fly replayed to it', async () => {
    const direct = await register(primary)
    expect(direct.status).toBe(201)
    expect(direct.headers.get('fly-replay')).toBeNull()
    const replayed = await register(primary, { 'fly-replay-src': 'instance=abc;region=fra;t=1' })
    expect(replayed.status).toBe(201)
    const { token } = (await replayed.json()) as { token: string }
    const me = await fetch(`${primary.url}/v1/me`, {
      headers: { authorization: `Bearer ${token}` },
    })
    expect(me.status).toBe(200)
  })
})

describe('the OpenAPI document', () => {
  it('describes the replay and the read-your-writes cookie', async () => {
    const doc = (await (await fetch(`${replica.url}/openapi/json`)).json()) as {
      info: { description: string }
    }
    for (const words of ['fly-replay: region=<primary>', 'fly-replay-src', 'atelier_last_write'])
      expect(doc.info.description).toContain(words)
  })
})

describe('read-your-writes', () => {
  it("replays a writer's reads to the primary for READ_YOUR_WRITES_MS after the write, then not", async () => {
    const res = await register(primary)
    expect(res.status).toBe(201)
    const setCookie = res.headers.get('set-cookie') ?? ''
    const match = /atelier_last_write=(\d+)/.exec(setCookie)
    expect(match).not.toBeNull()
    expect(setCookie).toContain(`Max-Age=${Math.ceil(WINDOW_MS / 1000)}`)
    const writtenAt = Number(match![1])
    const { token } = (await res.json()) as { token: string }
    const headers = { authorization: `Bearer ${token}`, cookie: `atelier_last_write=${writtenAt}` }

    const soon = await fetch(`${replica.url}/v1/me`, { headers })
    expect(soon.status).toBe(409)
    expect(soon.headers.get('fly-replay')).toBe('region=ams')
    expect(await soon.text()).toBe('')
    // the replayed read, should it land here again, is served: never a loop
    const landed = await fetch(`${replica.url}/v1/me`, {
      headers: { ...headers, 'fly-replay-src': 'instance=abc;region=fra;t=1' },
    })
    expect(landed.status).toBe(200)

    // polled (there is no event for time passing): replayed until the window ends, then local
    const servedAt = await within(
      (async () => {
        for (;;) {
          const r = await fetch(`${replica.url}/v1/me`, { headers })
          if (r.status === 200) return Date.now()
          expect(r.status).toBe(409)
          await Bun.sleep(50)
        }
      })(),
      WINDOW_MS + 5000,
      'the read region to serve the read itself once the window passed',
    )
    expect(servedAt - writtenAt).toBeGreaterThanOrEqual(WINDOW_MS)
  })

  it('never replays the WebSocket: a read region carries it, fed from Redis', async () => {
    const res = await register(primary)
    const writtenAt = /atelier_last_write=(\d+)/.exec(res.headers.get('set-cookie') ?? '')![1]
    const { token } = (await res.json()) as { token: string }
    const socket = await openSocket(`${replica.url.replace('http', 'ws')}/v1/ws`, {
      headers: { cookie: `atelier_last_write=${writtenAt}` },
    })
    socket.send({ type: 'auth', token })
    expect((await socket.next()).type).toBe('ready')
    const accepted = await fetch(`${primary.url}/v1/generations`, {
      method: 'POST',
      headers: { ...json, authorization: `Bearer ${token}` },
      body: JSON.stringify({
        mode: 'text',
        prompt: 'a dancer leaping over a river',
        variations: 1,
      }),
    })
    expect(accepted.status).toBe(202)
    const event = await socket.next()
    expect(event.type).toBe('event')
    expect(['credits.changed', 'generation.queued']).toContain(event.name)
    await socket.close()
  })
})
