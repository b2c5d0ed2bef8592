import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import { GROUP, readGroup, type Entry } from './streams'

export type InboxTakeoverDeps = {
  redis: Redis
  keys: RedisKeys
  instanceId: string
  /** Processes and acknowledges one entry (inbox.ts handle). */
  handle: (stream: string, entry: Entry) => Promise<void>
}

/**
 * Processes what a dead instance left in its inbox: entries it read and
 * never acknowledged (XAUTOCLAIM), then entries it never read; then deletes
 * its streams. One instance does it (a lock in Redis, held at most 30 s).
 * Returns how many entries it processed.
 */
export async function takeOverInbox(deps: InboxTakeoverDeps, dead: string): Promise<number> {
  const { redis, keys } = deps
  const lock = keys.actorTakeover(dead)
  const got = await redis.set(lock, deps.instanceId, { NX: true, PX: 30_000 })
  if (got === null) return 0
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
    await redis
      .multi()
      .del(stream)
      .del(keys.instanceReplies(dead))
      .zRem(keys.actorMembers(), dead)
      .exec()
    return n
  } finally {
    await redis.del(lock).catch(() => {})
  }
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
