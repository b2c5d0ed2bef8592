import { afterAll, describe, expect, it } from 'bun:test'
import pino from 'pino'
import { createClient } from 'redis'
import type { Event, EventLog } from '../../src/events/event'
import { makeEventLog } from '../../src/events/event-log'
import { makeRedisEventLog } from '../../src/events/redis-event-log'
import { ZERO_ID, compareIds } from '../../src/events/ids'
import type { Redis } from '../../src/redis/client'
import { makeRedisKeys } from '../../src/redis/keys'
import { MAX_CARRIED_BYTES, RECORD_SEPARATOR } from '../../src/events/notification'
import { makeLogger } from '../../src/obs/logger'
import { makeMetrics } from '../../src/obs/metrics'
import { getServices, stopContainers } from '../support/services'
import { appendEvent, nextSeq } from '../support/events'
import { waitFor } from '../support/wait'

/**
 * The same cases against both implementations: Redis streams (server mode)
 * and the in-memory rings (embedded mode). The Redis-only cases prove the
 * fan-out across instances and that connections do not grow with listeners.
 */
const services = await getServices()
const silentLog = makeLogger({ level: process.env.TEST_LOG_LEVEL ?? 'silent', pretty: false })
const runId = crypto.randomUUID().replaceAll('-', '').slice(0, 12)
const prefix = `atelier-test:${runId}:`
const keys = makeRedisKeys(prefix)
/** Every connection this file opens carries this name, so CLIENT LIST can count ours alone. */
const clientName = `atelier-events-test-${runId}`
const cleanups: (() => Promise<unknown>)[] = []

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
  const redis = createClient({ url: services.redisUrl })
  await redis.connect()
  for await (const found of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 }))
    if (found.length) await redis.del(found)
  await redis.quit()
  await stopContainers()
})

async function connect(): Promise<Redis> {
  const redis: Redis = createClient({ url: services.redisUrl, name: clientName })
  await redis.connect()
  cleanups.push(() => redis.quit())
  return redis
}

type Impl = { name: 'redis' | 'memory'; make(history?: number): Promise<EventLog> }

const impls: Impl[] = [
  {
    name: 'redis',
    async make(history = 1000) {
      const redis = await connect()
      const log = await makeEventLog({ redis, keys, history, log: silentLog })
      cleanups.push(() => log.close())
      return log
    },
  },
  {
    name: 'memory',
    async make(history = 1000) {
      const log = await makeEventLog({ keys, history, log: silentLog })
      cleanups.push(() => log.close())
      return log
    },
  },
]

const newUser = () => `user-${crypto.randomUUID()}`

/** A live-tail listener whose test awaits a number of events instead of sleeping. */
function listen(log: EventLog, userId: string) {
  const got: Event[] = []
  let waiter: { n: number; resolve: () => void } | undefined
  const unsubscribe = log.subscribe(userId, (e) => {
    got.push(e)
    if (waiter && got.length >= waiter.n) waiter.resolve()
  })
  return {
    got,
    unsubscribe,
    async until(n: number, timeoutMs = 5000): Promise<Event[]> {
      if (got.length < n) {
        let timer: ReturnType<typeof setTimeout> | undefined
        await Promise.race([
          new Promise<void>((resolve) => (waiter = { n, resolve })),
          new Promise<void>(
            (_, reject) =>
              (timer = setTimeout(
                () => reject(new Error(`got ${got.length} of ${n} events`)),
                timeoutMs,
              )),
          ),
        ]).finally(() => clearTimeout(timer))
      }
      return got
    },
  }
}

async function appendMany(log: EventLog, userId: string, n: number, from = 0) {
  const ids: string[] = []
  for (let i = from; i < from + n; i++)
    ids.push(
      await appendEvent(log, userId, 'credits.changed', { balance: i, delta: 1, kind: 'grant' }),
    )
  return ids
}

describe('event ids', () => {
  it('compare as numbers, not as strings', () => {
    expect(compareIds('10-0', '9-5')).toBeGreaterThan(0)
    expect(compareIds('9-10', '9-9')).toBeGreaterThan(0)
    expect(compareIds('1700000000000-3', '1700000000000-3')).toBe(0)
    expect(compareIds('1-18446744073709551614', '1-18446744073709551615')).toBeLessThan(0)
    expect(compareIds(ZERO_ID, '0-1')).toBeLessThan(0)
    // same milliseconds length, sequences of different lengths: the milliseconds decide first
    expect(compareIds('20-1', '10-10')).toBeGreaterThan(0)
    expect(compareIds('10-9', '10-10')).toBeLessThan(0)
    // and against exact arithmetic on many random pairs
    const sign = (n: number | bigint) => (n > 0 ? 1 : n < 0 ? -1 : 0)
    const part = () =>
      String(BigInt(Math.floor(Math.random() * 10 ** (1 + Math.floor(Math.random() * 4)))))
    for (let i = 0; i < 2000; i++) {
      const [a, b] = [`${part()}-${part()}`, `${part()}-${part()}`]
      const [ma, sa] = a.split('-').map(BigInt) as [bigint, bigint]
      const [mb, sb] = b.split('-').map(BigInt) as [bigint, bigint]
      const exact = ma === mb ? sign(sa - sb) : sign(ma - mb)
      expect([a, b, sign(compareIds(a, b))]).toEqual([a, b, exact])
    }
  })
})

for (const impl of impls) {
  const log = await impl.make()
  describe(`${impl.name} event log`, () => {
    it('gives ids that increase strictly per user, also under concurrent appends', async () => {
      const userId = newUser()
      const sequential = await appendMany(log, userId, 20)
      const concurrent = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          appendEvent(log, userId, 'generation.item', { generationId: 'g', i }),
        ),
      )
      const ids = [...sequential, ...concurrent]
      for (const id of ids) expect(id).toMatch(/^\d+-\d+$/)
      expect(new Set(ids).size).toBe(ids.length)
      for (let i = 1; i < sequential.length; i++)
        expect(compareIds(sequential[i - 1]!, sequential[i]!)).toBeLessThan(0)
      // what the log holds is in id order, and concurrent appends come after the sequential ones
      const { events } = await log.readAfter(userId, ZERO_ID, 1000)
      expect(events.map((e) => e.id)).toEqual([...ids].sort(compareIds))
      expect(compareIds(sequential.at(-1)!, [...concurrent].sort(compareIds)[0]!)).toBeLessThan(0)
    })

    it('takes ids from the outbox seq and refuses an event it holds, or one below its newest, as present', async () => {
      const userId = newUser()
      const live = listen(log, userId)
      const event = (seq: number) => ({
        userId,
        seq,
        name: 'credits.changed' as const,
        json: JSON.stringify({ seq }),
        at: Date.now(),
      })
      expect(await log.append(event(1))).toBe('appended')
      expect(await log.append(event(2))).toBe('appended')
      // relayed again (a relay whose commit failed after its append): refused, not duplicated
      expect(await log.append(event(2))).toBe('present')
      expect(await log.append(event(1))).toBe('present')
      expect(await log.append(event(3))).toBe('appended')
      const read = await log.readAfter(userId, ZERO_ID, 10)
      expect(read.events.map((e) => [e.id, e.data])).toEqual([
        ['1-0', { seq: 1 }],
        ['2-0', { seq: 2 }],
        ['3-0', { seq: 3 }],
      ])
      expect((await live.until(3)).map((e) => e.id)).toEqual(['1-0', '2-0', '3-0'])
      expect(live.got).toHaveLength(3)
      live.unsubscribe()
    })

    it('reads exactly the events after an id, in order, with their names, data and time', async () => {
      const userId = newUser()
      const before = Date.now()
      const ids = await appendMany(log, userId, 10)
      const after3 = await log.readAfter(userId, ids[3]!, 100)
      expect(after3.truncated).toBe(false)
      expect(after3.events.map((e) => e.id)).toEqual(ids.slice(4))
      expect(after3.events[0]).toMatchObject({
        name: 'credits.changed',
        data: { balance: 4, delta: 1, kind: 'grant' },
      })
      expect(after3.events[0]!.at).toBeGreaterThanOrEqual(before)
      expect(after3.events[0]!.at).toBeLessThanOrEqual(Date.now())

      const limited = await log.readAfter(userId, ids[3]!, 3)
      expect(limited.events.map((e) => e.id)).toEqual(ids.slice(4, 7))
      expect(limited).toMatchObject({ next: ids[6], more: true })
      const all = await log.readAfter(userId, ZERO_ID, 100)
      expect(all).toEqual({
        events: expect.any(Array),
        truncated: false,
        next: ids.at(-1)!,
        more: false,
      })
      expect(all.events.map((e) => e.id)).toEqual(ids)
      expect(await log.readAfter(userId, ids.at(-1)!, 100)).toEqual({
        events: [],
        truncated: false,
        next: ids.at(-1)!,
        more: false,
      })
    })

    it('keeps users apart, and a user without events has nothing to read', async () => {
      const [a, b] = [newUser(), newUser()]
      const idsA = await appendMany(log, a, 3)
      await appendMany(log, b, 2)
      expect((await log.readAfter(a, ZERO_ID, 100)).events.map((e) => e.id)).toEqual(idsA)
      expect(await log.readAfter(newUser(), ZERO_ID, 100)).toEqual({
        events: [],
        truncated: false,
        next: ZERO_ID,
        more: false,
      })
    })

    it('reports truncated exactly when events after the id were trimmed', async () => {
      const small = await impl.make(10)
      const userId = newUser()
      // Redis trims MAXLEN ~ by whole macro nodes (100 entries): 300 appends force it to trim
      const ids = await appendMany(small, userId, 300)
      const fromStart = await small.readAfter(userId, ids[0]!, 1000)
      expect(fromStart.truncated).toBe(true)
      const retained = fromStart.events.map((e) => e.id)
      expect(retained.length).toBeGreaterThanOrEqual(10)
      expect(retained.length).toBeLessThan(300)
      // what is retained is the newest events, without holes
      expect(retained).toEqual(ids.slice(ids.length - retained.length))
      const firstKept = ids.indexOf(retained[0]!)
      // from the oldest retained id on nothing is missing; any older id asks for a resync
      expect((await small.readAfter(userId, ids[firstKept]!, 1000)).truncated).toBe(false)
      expect((await small.readAfter(userId, ids.at(-2)!, 1000)).truncated).toBe(false)
      expect((await small.readAfter(userId, ids[firstKept - 1]!, 1000)).truncated).toBe(true)
      expect((await small.readAfter(userId, ZERO_ID, 1000)).truncated).toBe(true)
      // an id from a history that no longer exists (an expired stream) asks for a resync
      expect((await small.readAfter(newUser(), ids[5]!, 1000)).truncated).toBe(true)
      // so does one newer than any this history gave (another user's, say)
      expect((await small.readAfter(userId, ids.at(-1)!, 1000)).truncated).toBe(false)
      const stranger = newUser()
      let [other] = await appendMany(small, stranger, 1)
      // two streams give equal ids within one millisecond: append until it is newer
      while (compareIds(other!, ids.at(-1)!) <= 0) [other] = await appendMany(small, stranger, 1)
      expect(await small.readAfter(userId, other!, 1000)).toMatchObject({
        truncated: true,
        events: [],
      })
    })

    it('passes live events to subscribers, in order, until they unsubscribe', async () => {
      const userId = newUser()
      const first = listen(log, userId)
      const second = listen(log, userId)
      const other = listen(log, newUser())
      const ids = await appendMany(log, userId, 5)
      expect((await first.until(5)).map((e) => e.id)).toEqual(ids)
      expect((await second.until(5)).map((e) => e.id)).toEqual(ids)
      expect(first.got[0]).toMatchObject({ name: 'credits.changed', data: { balance: 0 } })

      first.unsubscribe()
      const [late] = await appendMany(log, userId, 1, 5)
      expect((await second.until(6)).at(-1)!.id).toBe(late!)
      expect(first.got).toHaveLength(5)
      expect(other.got).toHaveLength(0)
      second.unsubscribe()
      other.unsubscribe()
    })

    it('leaves no gap between a subscription and a read made after it', async () => {
      const userId = newUser()
      await appendMany(log, userId, 5)
      const { events: before } = await log.readAfter(userId, ZERO_ID, 1000)
      const mark = before.at(-1)!.id
      // appends run concurrently with subscribe-then-read, as during a socket's resume
      const appending = appendMany(log, userId, 200, 5)
      const tail = listen(log, userId)
      const read = await log.readAfter(userId, mark, 1000)
      const appended = await appending
      const last = appended.at(-1)!
      await tail.until(1)
      while (
        compareIds(tail.got.at(-1)?.id ?? ZERO_ID, last) < 0 &&
        compareIds(read.events.at(-1)?.id ?? ZERO_ID, last) < 0
      )
        await tail.until(tail.got.length + 1)
      const seen = new Set([...read.events, ...tail.got].map((e) => e.id))
      expect(appended.filter((id) => !seen.has(id))).toEqual([])
      const live = tail.got.map((e) => e.id)
      expect(live).toEqual([...live].sort(compareIds))
      expect(new Set(live).size).toBe(live.length)
      tail.unsubscribe()
    })

    it('refuses an unknown event name, a malformed id and a bad limit', async () => {
      const userId = newUser()
      await expect(
        appendEvent(log, userId, 'generation.exploded' as 'generation.item', {}),
      ).rejects.toThrow('unknown event name')
      await expect(log.readAfter(userId, 'yesterday', 10)).rejects.toThrow('not an event id')
      await expect(log.readAfter(userId, '01-0', 10)).rejects.toThrow('not an event id')
      await expect(log.readAfter(userId, ZERO_ID, 0)).rejects.toThrow('not a positive limit')
      expect((await log.readAfter(userId, ZERO_ID, 10)).events).toEqual([])
    })

    it('keeps what was appended, not what the producer changes afterwards', async () => {
      const userId = newUser()
      const data = { balance: 1, item: { status: 'queued' } }
      await appendEvent(log, userId, 'credits.changed', data)
      data.item.status = 'mutated'
      const { events } = await log.readAfter(userId, ZERO_ID, 10)
      expect(events[0]!.data).toEqual({ balance: 1, item: { status: 'queued' } })
    })

    if (impl.name === 'redis') {
      it('delivers an append on one instance to a subscriber on another', async () => {
        const a = await impl.make()
        const b = await impl.make()
        const userId = newUser()
        const onB = listen(b, userId)
        const id = await appendEvent(a, userId, 'generation.queued', { generationId: 'g1' })
        const [event] = await onB.until(1)
        expect(event).toMatchObject({ id, name: 'generation.queued', data: { generationId: 'g1' } })
        onB.unsubscribe()
      })

      it('passes on the events notifications carry without reading the stream, and reads it when they cannot', async () => {
        const metrics = makeMetrics()
        const count = async (name: string) =>
          (await metrics.registry.getSingleMetric(name)!.get()).values[0]?.value ?? 0
        const log = await makeEventLog({
          redis: await connect(),
          keys,
          history: 1000,
          log: silentLog,
          metrics,
        })
        cleanups.push(() => log.close())
        const userId = newUser()
        const live = listen(log, userId)
        // the first may race the tail's baseline read and be read from the stream
        await appendMany(log, userId, 1)
        await live.until(1)
        const reads = await count('events_tail_reads_total')
        const carried = await count('events_carried_total')
        const ids = await appendMany(log, userId, 20, 1)
        await live.until(21)
        expect(await count('events_tail_reads_total')).toBe(reads)
        expect(await count('events_carried_total')).toBe(carried + 20)

        // too large to carry: the notification names the user only, and the tail reads the stream
        const large = { text: 'x'.repeat(MAX_CARRIED_BYTES + 1), lines: 'a\nb' }
        const largeId = await appendEvent(log, userId, 'generation.item', large)
        await live.until(22)
        const after = await appendMany(log, userId, 1, 21)
        const got = await live.until(23)
        expect(got.map((e) => e.id)).toEqual([expect.any(String), ...ids, largeId, ...after])
        expect(got[21]!.data).toEqual(large)
        expect(await count('events_tail_reads_total')).toBe(reads + 1)
        // and the event after it follows the id the read ended on: carried again
        expect(await count('events_carried_total')).toBe(carried + 21)
        live.unsubscribe()
      })

      it('catches up after its subscriber connection breaks: no gap, no duplicate, then back in sync', async () => {
        // reconnects only after 300 ms, so the appends below surely miss the subscriber
        const redis: Redis = createClient({
          url: services.redisUrl,
          name: clientName,
          socket: { reconnectStrategy: () => 300 },
        })
        await redis.connect()
        cleanups.push(() => redis.quit())
        const metrics = makeMetrics()
        const count = async (name: string) =>
          (await metrics.registry.getSingleMetric(name)!.get()).values[0]?.value ?? 0
        const log = await makeEventLog({ redis, keys, history: 1000, log: silentLog, metrics })
        cleanups.push(() => log.close())
        const userId = newUser()
        const live = listen(log, userId)
        const before = await appendMany(log, userId, 2)
        await live.until(2)

        // counted before the kill: the reconnect's catch-up read may come before the appends below
        const reads = await count('events_tail_reads_total')
        const admin = await connect()
        const subscriberIds = (await admin.clientList())
          .filter((c) => c.name === clientName && c.flags.includes('P'))
          .map((c) => c.id)
        expect(subscriberIds.length).toBeGreaterThan(0)
        for (const id of subscriberIds)
          await admin.sendCommand(['CLIENT', 'KILL', 'ID', String(id)])
        const missed = await appendMany(log, userId, 3, 2)
        await live.until(5)
        expect(await count('events_tail_reads_total')).toBeGreaterThan(reads)

        // caught up and back in sync: once the catch-up reads end (one may still be running),
        // events come in their notifications again, with no read
        const carried = await count('events_carried_total')
        const after: string[] = []
        while (after.length < 5 && (await count('events_carried_total')) === carried) {
          after.push(...(await appendMany(log, userId, 1, 5 + after.length)))
          await live.until(5 + after.length)
        }
        expect(await count('events_carried_total')).toBeGreaterThan(carried)
        expect(live.got.map((e) => e.id)).toEqual([...before, ...missed, ...after])
        live.unsubscribe()
      })

      it('misses nothing when its first read fails: it starts after the newest committed event', async () => {
        // the log's warnings, so the test can wait for the failed read instead of sleeping
        const warnings: string[] = []
        const log = await makeEventLog({
          redis: await connect(),
          keys,
          history: 1000,
          log: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }),
          // what the outbox would answer: this user has no committed event yet
          fallbackBaseline: async () => ZERO_ID,
        })
        cleanups.push(() => log.close())
        const admin = await connect()
        const userId = newUser()
        const key = keys.userEvents(userId)
        // not a stream: the tail's baseline read fails with WRONGTYPE, for real
        await admin.set(key, 'not a stream')
        const live = listen(log, userId)
        await waitFor(() => warnings.some((w) => w.includes('event tail read failed')))
        await admin.del(key)
        // both in one batch, one notification: a baseline taken now would skip the first
        const ids = await Promise.all([
          appendEvent(log, userId, 'credits.changed', { i: 1 }),
          appendEvent(log, userId, 'credits.changed', { i: 2 }),
        ])
        expect((await live.until(2)).map((e) => e.id)).toEqual(ids)
        live.unsubscribe()
      })

      it('refuses only the events of a key that is not a stream, writing nothing for them', async () => {
        const log = await impl.make()
        const admin = await connect()
        const [good, bad] = [newUser(), newUser()]
        await admin.set(keys.userEvents(bad), 'not a stream')
        const live = listen(log, good)
        // one tick, one batch, one script call
        const [first, refused, second] = await Promise.allSettled([
          appendEvent(log, good, 'credits.changed', { i: 1 }),
          appendEvent(log, bad, 'credits.changed', { i: 2 }),
          appendEvent(log, good, 'credits.changed', { i: 3 }),
        ])
        expect(refused).toMatchObject({ status: 'rejected' })
        expect(await admin.get(keys.userEvents(bad))).toBe('not a stream')
        const ids = [first, second].map((r) => (r as PromiseFulfilledResult<string>).value)
        expect((await live.until(2)).map((e) => e.id)).toEqual(ids)
        expect((await log.readAfter(good, ZERO_ID, 10)).events.map((e) => e.data)).toEqual([
          { i: 1 },
          { i: 3 },
        ])
        live.unsubscribe()
      })

      it('refuses data text holding the batch separator (no JSON does), the rest of the batch stored as given', async () => {
        const log = await impl.make()
        const [a, b] = [newUser(), newUser()]
        const at = Date.now()
        const append = (userId: string, seq: number, json: string) =>
          log.append({ userId, seq, name: 'credits.changed', json, at })
        // one tick, one batch, one script call: the separator must not split it anywhere else
        const [first, refused, second] = await Promise.allSettled([
          append(a, 1, '{"i":1}'),
          append(b, 1, `{"text":"x${RECORD_SEPARATOR}2\\ny"}`),
          append(a, 2, '{"i":3}'),
        ])
        expect(first).toEqual({ status: 'fulfilled', value: 'appended' })
        expect(refused).toMatchObject({ status: 'rejected' })
        expect(second).toEqual({ status: 'fulfilled', value: 'appended' })
        expect((await log.readAfter(a, ZERO_ID, 10)).events.map((e) => [e.id, e.json])).toEqual([
          ['1-0', '{"i":1}'],
          ['2-0', '{"i":3}'],
        ])
        expect((await log.readAfter(b, ZERO_ID, 10)).events).toEqual([])
      })

      it('pages past entries it cannot read (an event name from a newer version)', async () => {
        const log = await impl.make()
        const admin = await connect()
        const userId = newUser()
        const [a] = await appendMany(log, userId, 1)
        const future = await admin.xAdd(keys.userEvents(userId), `${nextSeq(userId)}-0`, {
          n: 'generation.future',
          d: '{}',
          t: String(Date.now()),
        })
        const later = await appendMany(log, userId, 2, 1)
        const page = await log.readAfter(userId, ZERO_ID, 2)
        expect(page).toMatchObject({ next: future, more: true })
        expect(page.events.map((e) => e.id)).toEqual([a!])
        const rest = await log.readAfter(userId, page.next, 2)
        expect(rest).toMatchObject({ next: later[1], more: true })
        expect(rest.events.map((e) => e.id)).toEqual(later)
        expect(await log.readAfter(userId, rest.next, 2)).toMatchObject({ events: [], more: false })
      })

      it('gives every stream its expiry, refreshed at most once per interval', async () => {
        const redis = await connect()
        const refreshMs = 1000
        const log = await makeEventLog({
          redis,
          keys,
          history: 1000,
          ttlSeconds: 3600,
          log: silentLog,
        })
        const throttled = await makeRedisEventLog({
          redis,
          keys,
          history: 1000,
          ttlSeconds: 3600,
          expiryRefreshMs: refreshMs,
          log: silentLog,
        })
        cleanups.push(
          () => log.close(),
          () => throttled.close(),
        )
        const userId = newUser()
        const key = keys.userEvents(userId)
        const hour = 3600_000
        await appendMany(throttled, userId, 1)
        expect(await redis.pTTL(key)).toBeGreaterThan(hour - 60_000)
        // within the interval an append leaves the expiry as it is...
        await redis.pExpire(key, 10_000)
        await appendMany(throttled, userId, 1, 1)
        expect(await redis.pTTL(key)).toBeLessThanOrEqual(10_000)
        // ...except on a stream it has to make again (deleted, or expired)
        await redis.del(key)
        await appendMany(throttled, userId, 1, 2)
        expect(await redis.pTTL(key)).toBeGreaterThan(hour - 60_000)
        // once the interval has passed, the next append refreshes it
        await redis.pExpire(key, 10_000)
        // the passing of time is what is tested here: no event to await
        await Bun.sleep(refreshMs + 10)
        await appendMany(throttled, userId, 1, 3)
        expect(await redis.pTTL(key)).toBeGreaterThan(hour - 60_000)
        // another instance refreshes on its own schedule: its first append here does
        await redis.pExpire(key, 10_000)
        await appendMany(log, userId, 1, 4)
        expect(await redis.pTTL(key)).toBeGreaterThan(hour - 60_000)
      })

      it('writes entries as fields n, t and d, the layout every version reads', async () => {
        const log = await impl.make()
        const admin = await connect()
        const userId = newUser()
        const data = { text: 'two\nlines', n: 1 }
        const before = Date.now()
        const id = await appendEvent(log, userId, 'credits.changed', data)
        const [entry] = await admin.xRange(keys.userEvents(userId), '-', '+')
        expect(entry!.id).toBe(id)
        expect({ ...entry!.message }).toEqual({
          n: 'credits.changed',
          d: JSON.stringify(data),
          t: expect.stringMatching(/^\d+$/),
        })
        expect(Number(entry!.message.t)).toBeGreaterThanOrEqual(before)
      })

      it('keeps appending after Redis forgets its scripts (restart, SCRIPT FLUSH)', async () => {
        const log = await impl.make()
        const userId = newUser()
        const [first] = await appendMany(log, userId, 1)
        await (await connect()).scriptFlush()
        const [second] = await appendMany(log, userId, 1, 1)
        expect(compareIds(second!, first!)).toBeGreaterThan(0)
        const { events } = await log.readAfter(userId, ZERO_ID, 10)
        expect(events.map((e) => e.id)).toEqual([first!, second!])
      })

      it('uses the same number of Redis connections for 1 or 1000 subscribers', async () => {
        const admin = await connect()
        const ours = async () =>
          (await admin.clientList()).filter((c) => c.name === clientName).length
        const before = await ours()
        const shared = await impl.make()
        const withLog = await ours()
        // the command client made for it, and its one subscriber connection
        expect(withLog - before).toBe(2)
        const users = Array.from({ length: 1000 }, newUser)
        const listeners = users.map((u) => listen(shared, u))
        await Promise.all(
          users.slice(0, 50).map((u) => appendEvent(shared, u, 'credits.changed', {})),
        )
        await Promise.all(listeners.slice(0, 50).map((l) => l.until(1)))
        expect(await ours()).toBe(withLog)
        for (const l of listeners) l.unsubscribe()
      })
    }
  })
}
