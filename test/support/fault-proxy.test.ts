import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { createConnection, createServer, type Server, type Socket } from 'node:net'
import postgres from 'postgres'
import { startFaultProxy, type FaultProxy } from './fault-proxy'
import { getServices } from './services'
import { waitFor } from './wait'

/** An upstream that echoes every byte and counts what it received. */
let echo: Server
let echoPort = 0
let received = 0

beforeAll(async () => {
  echo = createServer((socket) => {
    socket.on('data', (data) => {
      received += data.length
      socket.write(data)
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', () => resolve()))
  echoPort = (echo.address() as { port: number }).port
})

afterAll(async () => {
  await new Promise<void>((resolve) => echo.close(() => resolve()))
})

type Client = {
  socket: Socket
  /** Resolves with the next `n` bytes echoed back, or rejects after `ms`. */
  read(n: number, ms?: number): Promise<string>
  closed: Promise<string>
}

function connect(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    let buffer = ''
    let waiter: (() => void) | undefined
    socket.on('data', (data) => {
      buffer += data.toString()
      waiter?.()
    })
    const closed = new Promise<string>((done) => {
      socket.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'error'))
      socket.on('close', () => done('close'))
    })
    socket.once('connect', () =>
      resolve({
        socket,
        closed,
        read(n, ms = 2000) {
          return new Promise((ok, fail) => {
            const timer = setTimeout(() => fail(new Error(`no ${n} bytes within ${ms} ms`)), ms)
            const check = () => {
              if (buffer.length < n) return
              clearTimeout(timer)
              waiter = undefined
              const out = buffer.slice(0, n)
              buffer = buffer.slice(n)
              ok(out)
            }
            waiter = check
            check()
          })
        },
      }),
    )
    socket.once('error', reject)
  })
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

describe('fault proxy', () => {
  let proxy: FaultProxy
  beforeAll(async () => {
    proxy = await startFaultProxy({ host: '127.0.0.1', port: echoPort })
  })
  afterAll(() => proxy.close())

  it('forwards both ways while open', async () => {
    const c = await connect(proxy.port)
    c.socket.write('hello')
    expect(await c.read(5)).toBe('hello')
    expect(proxy.connections).toBe(1)
    c.socket.destroy()
  })

  it('cut() closes every current connection and new ones work again', async () => {
    const a = await connect(proxy.port)
    const b = await connect(proxy.port)
    a.socket.write('x')
    b.socket.write('y')
    await Promise.all([a.read(1), b.read(1)])
    proxy.cut()
    await within(Promise.all([a.closed, b.closed]), 2000, 'both clients see the cut')
    expect(proxy.connections).toBe(0)
    const c = await connect(proxy.port)
    c.socket.write('again')
    expect(await c.read(5)).toBe('again')
    c.socket.destroy()
  })

  it('refuse(ms) resets new connections until ms have passed', async () => {
    const started = Date.now()
    proxy.refuse(300)
    expect(proxy.mode).toBe('refusing')
    const refused = await connect(proxy.port)
    expect(await within(refused.closed, 2000, 'the refused connection closes')).not.toBe('')
    // the proxy returns to open by its own timer: wait for that event, with a deadline
    await waitFor(() => proxy.mode === 'open', 2000, 'the proxy to reopen after refuse(300)')
    expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    const c = await connect(proxy.port)
    c.socket.write('open')
    expect(await c.read(4)).toBe('open')
    c.socket.destroy()
  })

  it('stall() forwards nothing on current and new connections until heal()', async () => {
    const old = await connect(proxy.port)
    proxy.stall()
    const fresh = await connect(proxy.port)
    const before = received
    old.socket.write('aa')
    fresh.socket.write('bb')
    // the proxy received all four bytes (an event, awaited) and held them: the upstream got none
    await waitFor(() => proxy.queuedBytes === 4, 2000, 'the proxy to hold the 4 stalled bytes')
    expect(received).toBe(before)
    proxy.heal()
    expect(await old.read(2)).toBe('aa')
    expect(await fresh.read(2)).toBe('bb')
    old.socket.destroy()
    fresh.socket.destroy()
  })
})

describe('fault proxy in front of Postgres', () => {
  it('carries queries, and a cut fails the next one until the client reconnects', async () => {
    const { postgresUrl } = await getServices()
    const u = new URL(postgresUrl)
    const proxy = await startFaultProxy({ host: u.hostname, port: Number(u.port || 5432) })
    const sql = postgres(proxy.url(postgresUrl), { max: 1, onnotice: () => {} })
    try {
      expect((await sql`select 1 as one`)[0]!.one).toBe(1)
      expect(proxy.connections).toBe(1)
      proxy.cut()
      // postgres.js reconnects on the next query once it saw the close
      const deadline = Date.now() + 5000
      let answered = false
      while (!answered) {
        if (Date.now() > deadline) throw new Error('no answer through the proxy 5 s after a cut')
        answered = await sql`select 1 as one`.then(
          () => true,
          () => false,
        )
      }
      expect(proxy.accepted).toBeGreaterThanOrEqual(2)
    } finally {
      await sql.end({ timeout: 1 })
      await proxy.close()
    }
  })
})
