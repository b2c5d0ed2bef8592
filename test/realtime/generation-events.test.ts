import { afterAll, describe, expect, it, setDefaultTimeout } from 'bun:test'
import { compareIds } from '../../src/events/ids'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { waitFor } from '../support/wait'
import { openSocket, type TestSocket } from '../support/ws'

// real renders: plain `bun test` allows 5 s per test
setDefaultTimeout(60_000)

const env = await useTestEnv()
const inst = await env.instance({
  RENDER_SIZE: '64',
  RENDER_CONCURRENCY: '1',
  SIGNUP_CREDITS: '300',
})
const server = inst.app.listen({ port: 0, hostname: '127.0.0.1' }).server!
afterAll(() => server.stop(true))
const api = client(inst)
const wsUrl = `ws://127.0.0.1:${server.port}/v1/ws`

async function connect(token: string, resumeAfter?: string) {
  const socket = await openSocket(wsUrl, { timeoutMs: 30_000 })
  socket.send({ type: 'auth', token, ...(resumeAfter ? { resumeAfter } : {}) })
  expect((await socket.next()).type).toBe('ready')
  return socket
}

/** Events until (and including) the one `until` accepts. */
async function eventsUntil(socket: TestSocket, until: (e: any) => boolean) {
  const seen: any[] = []
  for (;;) {
    const m = await socket.next()
    expect(m.type).toBe('event')
    seen.push(m)
    if (until(m)) return seen
  }
}

describe('events of a generation', () => {
  it('streams charge, queued, started, each item and finished, in commit order', async () => {
    const { token, user } = await api.register()
    // the signup grant's event is relayed from the outbox just after the commit; a
    // socket opened before that may get it live too (API.md allows it): wait it out
    await waitFor(
      async () => (await inst.events.readAfter(user.id, '0-0', 10)).events.length === 1,
      5000,
      'the signup grant to be relayed',
    )
    const socket = await connect(token)
    const g = (
      await api.post(
        '/v1/generations',
        { mode: 'text', prompt: 'four small boats', variations: 4 },
        token,
      )
    ).json
    const events = await eventsUntil(socket, (e) => e.name === 'generation.finished')
    await socket.close()
    const names = events.map((e) => e.name)
    expect(names.slice(0, 3)).toEqual([
      'credits.changed',
      'generation.queued',
      'generation.started',
    ])
    expect(events[0].data).toEqual({ balance: 180, delta: -120, kind: 'charge' })
    const done = events.filter(
      (e) => e.name === 'generation.item' && e.data.item.status === 'succeeded',
    )
    expect(done).toHaveLength(4)
    expect(done.at(-1).data).toMatchObject({ generationId: g.id, succeededItems: 4, totalItems: 4 })
    // every item event carries the generation's counters and the item as REST shows it
    const counters = ['generationId', 'status', 'totalItems', 'succeededItems', 'failedItems']
    for (const e of events.filter((e) => e.name === 'generation.item')) {
      expect(Object.keys(e.data)).toEqual(expect.arrayContaining([...counters, 'cancelledItems']))
      expect(Object.keys(e.data.item).sort()).toEqual(
        ['error', 'exports', 'id', 'imageUrl', 'key', 'status', 'thumbnailUrl'].sort(),
      )
    }
    const running = events.filter(
      (e) => e.name === 'generation.item' && e.data.item.status === 'running',
    )
    expect(running).toHaveLength(4)
    expect(running[0].data).toMatchObject({ generationId: g.id, status: 'running', totalItems: 4 })
    // a finished item's URLs are signed and serve its image
    const image = await fetch(
      new URL(done[0].data.item.imageUrl, `http://127.0.0.1:${server.port}`),
    )
    expect(image.status).toBe(200)
    expect(image.headers.get('content-type')).toStartWith('image/')
    expect(done[0].data.item.thumbnailUrl).toEqual(expect.any(String))
    expect(events.at(-1).data).toMatchObject({
      generationId: g.id,
      status: 'succeeded',
      creditsRefunded: 0,
    })
    const ids = events.map((e) => e.id)
    for (let i = 1; i < ids.length; i++) expect(compareIds(ids[i - 1], ids[i])).toBeLessThan(0)
  })

  it('resumes mid-generation with exactly the missed events, then live ones', async () => {
    const { token, user } = await api.register()
    const first = await connect(token)
    const g = (
      await api.post(
        '/v1/generations',
        { mode: 'text', prompt: 'a row of lanterns', variations: 4 },
        token,
      )
    ).json
    const before = await eventsUntil(
      first,
      (e) => e.name === 'generation.item' && e.data.item.status === 'succeeded',
    )
    await first.close()
    const lastSeen = before.at(-1).id
    const resumed = await connect(token, lastSeen)
    const after = await eventsUntil(
      resumed,
      (e) => e.name === 'generation.finished' && e.data.generationId === g.id,
    )
    await resumed.close()
    const log = await inst.events.readAfter(user.id, '0-0', 1000)
    const all = log.events.map((e) => e.id)
    // together: every event of the log from the charge on, once each, in order
    expect([...before, ...after].map((e) => e.id)).toEqual(all.slice(all.indexOf(before[0].id)))
    expect(new Set(after.map((e) => e.id)).size).toBe(after.length)
  })

  it('appends nothing for a generation that was refused', async () => {
    const { token, user } = await api.register()
    const res = await api.post(
      '/v1/generations',
      {
        mode: 'text',
        prompt: 'far too many',
        variations: 8,
        background: { mode: 'color', value: '#000' },
      },
      token,
    )
    expect(res.status).toBe(402)
    // the relay is asynchronous: once nothing of the user's is pending, the log holds all of it
    await waitFor(
      async () =>
        (await env.sql`select 1 from event_outbox where user_id = ${user.id} and sent_at is null`)
          .length === 0,
      10_000,
      "the user's outbox events to be relayed",
    )
    const log = await inst.events.readAfter(user.id, '0-0', 100)
    // only the signup grant: no charge, no generation.queued for what rolled back
    expect(log.events.map((e) => [e.name, e.data])).toEqual([
      ['credits.changed', { balance: 300, delta: 300, kind: 'grant' }],
    ])
  })
})
