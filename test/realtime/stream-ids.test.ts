import { afterAll, describe, expect, it, setDefaultTimeout } from 'bun:test'
import type { Instance } from '../../src/server'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { appendEvent } from '../support/events'
import { openSocket } from '../support/ws'

/**
 * Stream ids a client sends (API.md, WebSocket 3 and 5): an id in form that no
 * history could have issued (a part above 2^64) answers `resync`; something
 * that is no id at all closes with 1008. Never 1011, never 4401 for a good token.
 */
const env = await useTestEnv()
const inst: Instance = await env.instance()
inst.app.listen({ port: 0, hostname: '127.0.0.1' })
const url = `ws://127.0.0.1:${inst.app.server!.port}/v1/ws`
afterAll(() => inst.app.server?.stop(true))
const api = client(inst)
// each socket waits for its own frames with a 5 s deadline (test/support/ws.ts)
setDefaultTimeout(30_000)

// one registered user (argon2 is slow on a busy machine); its history has one event
const { user, token: userToken } = await api.register()
await appendEvent(inst.events, user.id, 'credits.changed', { balance: 1, delta: 1, kind: 'grant' })
async function session() {
  return { userId: user.id, token: userToken }
}

const TOO_BIG = [
  '99999999999999999999-0',
  '0-99999999999999999999',
  '99999999999999999999999-0', // any length: out of range, not malformed
  `1${'0'.repeat(120)}-0`,
  '18446744073709551616-0',
  '18446744073709551615-18446744073709551615', // the largest: nothing follows it
]

describe('resumeAfter and resume.after', () => {
  it('answers an id above 2^64 in resumeAfter with resync, then live events', async () => {
    for (const id of TOO_BIG) {
      const { userId, token } = await session()
      const socket = await openSocket(url)
      socket.send({ type: 'auth', token, resumeAfter: id })
      expect((await socket.next()).type).toBe('ready')
      expect(await socket.next()).toEqual({ type: 'resync' })
      const live = await appendEvent(inst.events, userId, 'credits.changed', {
        balance: 2,
        delta: 1,
        kind: 'grant',
      })
      expect(await socket.next()).toMatchObject({ type: 'event', id: live })
      await socket.close()
    }
  })

  it('answers an id above 2^64 in resume.after with resync and keeps the socket', async () => {
    const { token } = await session()
    const socket = await openSocket(url)
    socket.send({ type: 'auth', token })
    expect((await socket.next()).type).toBe('ready')
    socket.send({ type: 'resume', after: TOO_BIG[0] })
    expect(await socket.next()).toEqual({ type: 'resync' })
    socket.send({ type: 'ping' })
    expect(await socket.next()).toEqual({ type: 'pong' })
    await socket.close()
  })

  it('closes with 1008 for a malformed id, with a good token in the auth message or after it', async () => {
    for (const bad of ['abc', '1-2-3', '-1-0', '', '01-0', '1-0\u0000']) {
      const { token } = await session()
      const first = await openSocket(url)
      first.send({ type: 'auth', token, resumeAfter: bad })
      expect((await first.closed()).code, `resumeAfter ${JSON.stringify(bad)}`).toBe(1008)

      const second = await openSocket(url)
      second.send({ type: 'auth', token })
      expect((await second.next()).type).toBe('ready')
      second.send({ type: 'resume', after: bad })
      expect((await second.closed()).code, `after ${JSON.stringify(bad)}`).toBe(1008)
    }
  })

  it('still closes with 4401 for a bad token whatever resumeAfter says', async () => {
    const socket = await openSocket(url)
    socket.send({ type: 'auth', token: 'not-a-token', resumeAfter: 'abc' })
    expect((await socket.closed()).code).toBe(4401)
  })
})
