import { connect as tcpConnect, type Socket as TcpSocket } from 'node:net'

/**
 * WebSocket clients for tests against a listening server: `openSocket` wraps
 * Bun's WebSocket so a test awaits the next message or the close (no sleeps);
 * `rawUpgrade` and `openRawSocket` speak HTTP/WebSocket over TCP for what the
 * WebSocket API hides (the upgrade's status, a client that stops reading).
 */
export type Closed = { code: number; reason: string }

export type TestSocket = Awaited<ReturnType<typeof openSocket>>

// Bun's WebSocket takes { headers } as its second argument, which the DOM types do not know
type BunWebSocket = new (url: string, options?: { headers?: Record<string, string> }) => WebSocket

export async function openSocket(
  url: string,
  options: { headers?: Record<string, string>; timeoutMs?: number } = {},
) {
  const timeoutMs = options.timeoutMs ?? 5000
  const ws = new (WebSocket as unknown as BunWebSocket)(url, { headers: options.headers })
  const inbox: any[] = []
  const waiters: { resolve: (m: any) => void; reject: (e: Error) => void }[] = []
  let closedWith: Closed | undefined
  const closed = new Promise<Closed>((resolve) => {
    ws.addEventListener('close', (e) => {
      closedWith = { code: e.code, reason: e.reason }
      for (const w of waiters.splice(0))
        w.reject(new Error(`socket closed (${e.code} ${e.reason}) before the next message`))
      resolve(closedWith)
    })
  })
  ws.addEventListener('message', (e) => {
    const message = JSON.parse(String(e.data))
    const waiter = waiters.shift()
    if (waiter) waiter.resolve(message)
    else inbox.push(message)
  })
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true })
    ws.addEventListener('error', () => reject(new Error(`could not open ${url}`)), { once: true })
  })

  function within<T>(promise: Promise<T>, what: string): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined
    return Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs)
      }),
    ]).finally(() => clearTimeout(timer))
  }

  return {
    ws,
    send(message: unknown) {
      ws.send(typeof message === 'string' ? message : JSON.stringify(message))
    },
    /** The next message from the server, parsed. */
    next(): Promise<any> {
      if (inbox.length > 0) return Promise.resolve(inbox.shift())
      if (closedWith)
        return Promise.reject(new Error(`socket closed (${closedWith.code}) with nothing unread`))
      return within(
        new Promise((resolve, reject) => waiters.push({ resolve, reject })),
        'a message',
      )
    },
    /** The next `n` messages. */
    async take(n: number): Promise<any[]> {
      const out = []
      for (let i = 0; i < n; i++) out.push(await this.next())
      return out
    },
    /** Messages received and not yet taken. */
    unread: () => [...inbox],
    closed: () => within(closed, 'the close'),
    close(code = 1000) {
      ws.close(code)
      return closed
    },
  }
}

function request(path: string, host: string, headers: Record<string, string>) {
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ]
  return `${lines.join('\r\n')}\r\n\r\n`
}

/** Sends an upgrade request over TCP; resolves to the response's status and head. */
export function rawUpgrade(port: number, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; head: string }>((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1')
    let text = ''
    socket.on('error', reject)
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end < 0) return
      socket.destroy()
      resolve({ status: Number(text.split(' ')[1]), head: text.slice(0, end) })
    })
    socket.write(request(path, `127.0.0.1:${port}`, headers))
  })
}

/** A masked client text frame (RFC 6455 §5.2). */
function textFrame(text: string) {
  const payload = Buffer.from(text)
  const mask = crypto.getRandomValues(new Uint8Array(4))
  const length = payload.length
  const header =
    length < 126
      ? Buffer.from([0x81, 0x80 | length])
      : Buffer.from([0x81, 0x80 | 126, length >> 8, length & 0xff])
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))
  return Buffer.concat([header, Buffer.from(mask), masked])
}

export type RawFrame = { opcode: number; payload: Buffer }

/**
 * A WebSocket over a bare TCP socket. `pause()` stops reading, so the
 * server's sends pile up as they would for a client on a slow network.
 */
export async function openRawSocket(port: number, path: string) {
  const socket: TcpSocket = tcpConnect(port, '127.0.0.1')
  let buffer = Buffer.alloc(0)
  let upgraded = false
  const frames: RawFrame[] = []
  const listeners = new Set<() => void>()
  const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  socket.on('error', () => {})
  const ready = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n')
        if (end < 0) return
        const head = buffer.subarray(0, end).toString('latin1')
        if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head))
        upgraded = true
        buffer = buffer.subarray(end + 4)
        resolve()
      }
      parse()
    })
  })

  function parse() {
    for (;;) {
      if (buffer.length < 2) return
      const opcode = buffer[0]! & 0x0f
      let length = buffer[1]! & 0x7f
      let offset = 2
      if (length === 126) {
        if (buffer.length < 4) return
        length = buffer.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (buffer.length < 10) return
        length = Number(buffer.readBigUInt64BE(2))
        offset = 10
      }
      if (buffer.length < offset + length) return
      frames.push({ opcode, payload: Buffer.from(buffer.subarray(offset, offset + length)) })
      buffer = buffer.subarray(offset + length)
      for (const l of listeners) l()
    }
  }

  socket.write(request(path, `127.0.0.1:${port}`, {}))
  await ready

  return {
    frames,
    send: (message: unknown) => socket.write(textFrame(JSON.stringify(message))),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    /** Resolves with the first frame (from the start) that matches. */
    until(match: (f: RawFrame) => boolean, timeoutMs = 10_000): Promise<RawFrame> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          listeners.delete(check)
          reject(new Error('timed out waiting for a frame'))
        }, timeoutMs)
        function check() {
          const found = frames.find(match)
          if (!found) return
          clearTimeout(timer)
          listeners.delete(check)
          resolve(found)
        }
        listeners.add(check)
        check()
      })
    },
    ended,
    destroy: () => socket.destroy(),
  }
}
