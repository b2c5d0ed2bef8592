import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import { loadScript } from '../redis/script'
import { GROUP, readGroup, type Entry, type StreamReply } from './streams'

export type InboxTakeoverDeps = {
  redis: Redis
  keys: RedisKeys
  instanceId: string
  /** Processes and acknowledges one entry (inbox.ts handle). */
  handle: (stream: string, entry: Entry) => Promise<void>
}

/** The takeover lock's lifetime, renewed every third of it while the takeover runs. */
const LOCK_MS = 30_000

const HELD_LOCK = loadScript(new URL('./lua/held-lock.lua', import.meta.url))

/**
 * Processes what a dead instance left in its inbox: entries it read and
 * never acknowledged (XAUTOCLAIM), then entries it never read; then deletes
 * its streams, together with a last read, so no entry written meanwhile is
 * deleted unanswered. One instance does it: a lock in Redis, renewed while
 * the entries are handled (one may take a batch's deadline), and released
 * only by its taker. Returns how many entries it processed.
 */
export async function takeOverInbox(deps: InboxTakeoverDeps, dead: string): Promise<number> {
  const { redis, keys } = deps
  const lock = keys.actorTakeover(dead)
  const mine = `${deps.instanceId}:${crypto.randomUUID()}`
  if ((await redis.set(lock, mine, { NX: true, PX: LOCK_MS })) === null) return 0
  const renewing = setInterval(() => {
    void HELD_LOCK.run(redis, [lock], [mine, 'renew', String(LOCK_MS)]).catch(() => {})
  }, LOCK_MS / 3)
  const stream = keys.instanceInbox(dead)
  try {
    let n = 0
    if ((await redis.exists(stream)) === 1) {
      n += await claimPending(deps, stream)
      for (;;) {
        const entries = await readGroup(redis, stream, deps.instanceId, '>')
        if (entries.length === 0) break
        await Promise.all(entries.map((e) => deps.handle(stream, e)))
        n += entries.length
      }
    }
    n += await deleteStreams(deps, dead, stream)
    return n
  } finally {
    clearInterval(renewing)
    await HELD_LOCK.run(redis, [lock], [mine, 'release']).catch(() => {})
  }
}

/**
 * The dead instance's streams deleted, and its membership, in one
 * transaction with a last read of the inbox: an entry a sender wrote after
 * the read before is answered, not deleted unseen (its sender still took
 * the dead instance for alive). Returns how many it answered.
 */
async function deleteStreams(deps: InboxTakeoverDeps, dead: string, stream: string) {
  const { redis, keys } = deps
  const lastRead = ['XREADGROUP', 'GROUP', GROUP, deps.instanceId, 'STREAMS', stream, '>']
  const deletes = [
    ['DEL', stream],
    ['DEL', keys.instanceReplies(dead)],
    ['ZREM', keys.actorMembers(), dead],
  ]
  const inOne = (commands: string[][]) => {
    const m = redis.multi()
    for (const c of commands) m.addCommand(c)
    return m.exec() as unknown as Promise<unknown[]>
  }
  let left: Entry[] = []
  try {
    const [read] = (await inOne([lastRead, ...deletes])) as [StreamReply]
    left = read?.[0]?.[1] ?? []
  } catch {
    // no inbox to read (none was left, or another taker deleted it): delete the rest
    await inOne(deletes)
  }
  await Promise.all(left.map((e) => deps.handle(stream, e)))
  return left.length
}

/** The dead consumer's pending entries, claimed page by page (256) and processed. */
async function claimPending(deps: InboxTakeoverDeps, stream: string) {
  let n = 0
  for (let cursor = '0-0'; ;) {
    const [next, entries] = (await deps.redis.sendCommand([
      ...['XAUTOCLAIM', stream, GROUP, deps.instanceId],
      ...['0', cursor, 'COUNT', '256'],
    ])) as [string, (Entry | null)[]]
    const live = entries.filter((e): e is Entry => e !== null)
    await Promise.all(live.map((e) => deps.handle(stream, e)))
    n += live.length
    cursor = next
    if (next === '0-0') return n
  }
}
