import type { Logger } from '../obs/logger'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'

/**
 * Tells every instance that the library changed, so each clears its pose
 * cache. With Redis: one PUBLISH per admin write, and one subscriber
 * connection per instance (opened here once, never per request). When
 * embedded there is one instance: the clear is a function call.
 *
 * A subscriber that reconnects may have missed messages, so it clears on
 * every reconnect too; the cache's TTL bounds staleness even then.
 */
export type LibraryInvalidation = {
  /** Clears this instance's cache now and every other instance's through Redis. */
  publish(): Promise<void>
  /** Changes this instance published, and heard of from others (in order: Redis pub/sub keeps it). */
  counts(): { published: number; received: number }
  close(): Promise<void>
}

export type LibraryInvalidationDeps = {
  /** The shared command client; absent in embedded mode (one instance: a function call). */
  redis?: Redis
  keys: RedisKeys
  instanceId: string
  /** Clears this instance's pose cache. */
  clear: () => void
  log: Logger
}

export async function makeLibraryInvalidation(
  deps: LibraryInvalidationDeps,
): Promise<LibraryInvalidation> {
  const { redis, clear, log } = deps
  let published = 0
  let received = 0
  const counts = () => ({ published, received })
  if (!redis) {
    const publish = async () => {
      published++
      clear()
    }
    return { publish, counts, close: async () => {} }
  }
  const channel = deps.keys.libraryChanged()
  const subscriber = redis.duplicate()
  let ready = false
  subscriber.on('error', (err) => log.warn({ err }, 'library subscriber error'))
  subscriber.on('ready', () => {
    if (ready) clear() // a reconnect: messages may have been missed
  })
  await subscriber.connect()
  await subscriber.subscribe(channel, (from) => {
    if (from === deps.instanceId) return
    received++
    clear()
  })
  ready = true
  return {
    counts,
    async publish() {
      published++
      clear()
      // the write is committed: a failed publish leaves other instances stale until their TTL
      await redis
        .publish(channel, deps.instanceId)
        .catch((err) => log.error({ err }, 'library change not published'))
    },
    close: async () => {
      await subscriber.quit().catch(() => {})
    },
  }
}
