import { afterAll, beforeAll, describe, expect, it } from 'bun:test'
import { makeRealtime, type Connection } from '../../src/web/client/realtime'
import { waitFor } from '../support/wait'

/**
 * The browser client's reaction to each close code, with the page's globals
 * (WebSocket, location, sessionStorage) replaced by fakes for this file only.
 * The full client runs in Chromium in browser.test.ts.
 */
class FakeSocket {
  static OPEN = 1
  static opened: FakeSocket[] = []
  readyState = 0
  sent: string[] = []
  onopen?: () => void
  onmessage?: (e: { data: string }) => void
  onclose?: (e: { code: number }) => void
  constructor(readonly url: URL) {
    FakeSocket.opened.push(this)
  }
  send(text: string) {
    this.sent.push(text)
  }
  close() {}
  /** The server accepts the auth message. */
  ready() {
    this.readyState = FakeSocket.OPEN
    this.onopen?.()
    this.onmessage?.({ data: JSON.stringify({ type: 'ready', userId: 'u', instance: 'i' }) })
  }
}

const saved = {
  WebSocket: globalThis.WebSocket,
  location: (globalThis as any).location,
  sessionStorage: (globalThis as any).sessionStorage,
}
const storage = new Map<string, string>()

beforeAll(() => {
  ;(globalThis as any).WebSocket = FakeSocket
  ;(globalThis as any).location = { href: 'http://localhost/' }
  ;(globalThis as any).sessionStorage = {
    getItem: (k: string) => storage.get(k) ?? null,
    setItem: (k: string, v: string) => void storage.set(k, v),
    removeItem: (k: string) => void storage.delete(k),
  }
})
afterAll(() => Object.assign(globalThis, saved))

function start() {
  storage.set('atelier.token', 'a-token')
  const states: Connection[] = []
  let unauthorized = 0
  const realtime = makeRealtime({
    event() {},
    resync() {},
    status: (state) => void states.push(state),
    unauthorized: () => void unauthorized++,
  })
  const before = FakeSocket.opened.length
  realtime.start()
  const socket = FakeSocket.opened.at(-1)!
  expect(FakeSocket.opened.length).toBe(before + 1)
  socket.ready()
  return { realtime, socket, states, unauthorized: () => unauthorized, before }
}

describe('the browser client', () => {
  it('reconnects after 1013, resuming after its last id', async () => {
    const { realtime, socket, states, before } = start()
    socket.onmessage?.({
      data: JSON.stringify({ type: 'event', id: '5-0', name: 'credits.changed', data: {} }),
    })
    socket.onclose?.({ code: 1013 })
    expect(states.at(-1)).toBe('reconnecting')
    // the first backoff is under 1 s; the deadline leaves room for a loaded machine's timers
    await waitFor(() => FakeSocket.opened.length === before + 2, 10_000, 'the reconnect')
    FakeSocket.opened.at(-1)!.onopen?.()
    expect(JSON.parse(FakeSocket.opened.at(-1)!.sent[0]!)).toMatchObject({ resumeAfter: '5-0' })
    realtime.stop()
  }, 20_000)

  it('stops and asks for a reload after 1008 or 1009, instead of repeating the fault', () => {
    for (const code of [1008, 1009]) {
      const { socket, states } = start()
      socket.onclose?.({ code })
      expect(states.at(-1)).toBe('failed')
      expect(states).not.toContain('reconnecting')
    }
  })

  it('signs out on 4401, and when the token is gone by the time it reconnects', async () => {
    const first = start()
    first.socket.onclose?.({ code: 4401 })
    expect(first.states.at(-1)).toBe('stopped')
    expect(first.unauthorized()).toBe(1)

    const second = start()
    storage.clear()
    second.socket.onclose?.({ code: 1006 })
    expect(second.states.at(-1)).toBe('reconnecting')
    await waitFor(() => second.states.at(-1) === 'stopped', 2000, 'the retry')
    expect(second.unauthorized()).toBe(1)
    expect(FakeSocket.opened.length).toBe(second.before + 1)
  })
})
