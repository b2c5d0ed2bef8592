import { serveOptions, type Instance } from '../../src/server'
import { within } from './server-process'

/** Calls the app in-process: `app.handle(new Request('http://localhost/…'))`. */
export function client(inst: Instance) {
  async function call(
    method: string,
    path: string,
    options: { body?: unknown; token?: string; headers?: Record<string, string> } = {},
  ) {
    const headers: Record<string, string> = { ...options.headers }
    if (options.token) headers.authorization = `Bearer ${options.token}`
    let body: string | undefined
    if (options.body !== undefined) {
      headers['content-type'] ??= 'application/json'
      body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body)
    }
    const res = await inst.app.handle(
      new Request(`http://localhost${path}`, { method, headers, body }),
    )
    const text = await res.text()
    let json: any
    try {
      json = text ? JSON.parse(text) : undefined
    } catch {
      json = undefined
    }
    return { status: res.status, headers: res.headers, json, text }
  }
  return {
    call,
    get: (path: string, token?: string) => call('GET', path, { token }),
    post: (path: string, body: unknown, token?: string, headers?: Record<string, string>) =>
      call('POST', path, { body, token, headers }),
    async register(
      email = `u-${crypto.randomUUID()}@example.com`,
      password = 'correct horse battery',
    ) {
      const res = await call('POST', '/v1/auth/register', { body: { email, password } })
      if (res.status !== 201) throw new Error(`register failed: ${res.status} ${res.text}`)
      return {
        ...(res.json as { user: { id: string; email: string; role: string }; token: string }),
        password,
      }
    },
  }
}

/**
 * Writes `request` (raw HTTP/1.1, maybe headers only) to 127.0.0.1:`port` and resolves with what
 * came back once a JSON body has arrived or the server closed; fails after 5 s naming `what`.
 */
export async function rawExchange(port: number, request: string, what: string) {
  let received = ''
  const { promise: answered, resolve } = Promise.withResolvers<string>()
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      data(_s, chunk) {
        received += chunk.toString()
        if (received.includes('\r\n\r\n') && received.includes('}')) resolve(received)
      },
      close() {
        resolve(received)
      },
    },
  })
  socket.write(request)
  try {
    return await within(answered, 5000, what)
  } finally {
    socket.end()
  }
}

/** Serves `inst` on a loopback port of its own, with the production server options; stop it when done. */
export function serveOnLoopback(inst: Instance) {
  return inst.app.listen({ ...serveOptions(inst.config), port: 0, hostname: '127.0.0.1' }).server!
}
