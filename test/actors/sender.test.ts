import { afterAll, describe, expect, it } from 'bun:test'
import type { Envelope } from '../../src/actors/envelope'
import { makeSender } from '../../src/actors/sender'
import { ensureGroup, type Entry } from '../../src/actors/streams'
import { connectRedis } from '../../src/redis/client'
import { makeRedisKeys } from '../../src/redis/keys'
import { silentLog, useTestEnv } from '../support/env'
import { waitFor } from '../support/wait'

/**
 * The sending side of forwarding against a real Redis: what reaches a
 * target's inbox stream, entry by entry, and when.
 */
const env = await useTestEnv()
const keys = makeRedisKeys(env.redisPrefix)
const redis = await connectRedis(env.services.redisUrl, () => {})
afterAll(() => redis.quit())
const inbox = keys.instanceInbox('target')
await ensureGroup(redis, inbox)

function envelope(n: number): Envelope {
  return {
    id: `e${n}-${crypto.randomUUID()}`,
    from: 'me',
    key: 'user-1',
    epoch: 1,
    deadline: Date.now() + 5000,
    hops: 0,
    command: String(n),
  }
}

/** The inbox's entries, each as the commands it carries. */
async function entries() {
  const got = (await redis.sendCommand(['XRANGE', inbox, '-', '+'])) as Entry[]
  return got.map(([, fields]) => (JSON.parse(fields[1]!) as Envelope[]).map((e) => e.command))
}

const xlen = async () => Number(await redis.sendCommand(['XLEN', inbox]))

/** What the owner would answer: one reply entry per envelope. */
const replies = (es: Envelope[]): Entry[] =>
  es.map((e, i) => [`${i + 1}-0`, ['r', JSON.stringify([{ id: e.id, outcome: e.command }])]])

describe('forwarding: sending', () => {
  it('sends a lone envelope at once and coalesces what arrives in the same turn while its XADD is in flight', async () => {
    const sender = makeSender({ redis, keys, instanceId: 'me', timeoutMs: 1000, log: silentLog })
    const es = [1, 2, 3, 4].map(envelope)
    const answers = es.slice(0, 3).map((e) => sender.send('target', e, 5000))
    // queued on the same connection right after: it counts the first entry only if that was
    // already written, not left for a later turn of the event loop
    expect(await xlen()).toBe(1)
    await waitFor(async () => (await entries()).length === 2, 2000, 'the second entry')
    expect(await entries()).toEqual([['1'], ['2', '3']])
    // nothing in flight any more: the next one goes at once again, alone
    answers.push(sender.send('target', es[3]!, 5000))
    expect(await xlen()).toBe(3)
    expect((await entries()).at(-1)).toEqual(['4'])
    sender.settleReplies(replies(es))
    expect(await Promise.all(answers)).toEqual(es.map((e) => ({ outcome: e.command })))
    expect(sender.waiting).toBe(0)
  })
})
