import type { Redis } from '../redis/client'

/**
 * The Redis stream calls forwarding shares (forwarding.ts, inbox.ts,
 * inbox-takeover.ts): every inbox and reply stream has one consumer group,
 * GROUP, and each instance reads as the consumer named by its id.
 */
export const GROUP = 'actors'

export type Entry = [id: string, fields: string[]]
export type StreamReply = [stream: string, entries: Entry[]][] | null

/** Creates `stream`'s group (and the stream); one that exists is left as it is. */
export async function ensureGroup(redis: Redis, stream: string) {
  try {
    // only ever for this instance's own streams: a dead instance's inbox must not come back
    await redis.sendCommand(['XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM'])
  } catch (err) {
    if (!String((err as Error).message).includes('BUSYGROUP')) throw err
  }
}

/** One page (256) of `stream` as `consumer`: `after` an id of its pending entries, or '>' for new ones. */
export async function readGroup(client: Redis, stream: string, consumer: string, after: string) {
  const got = (await client.sendCommand([
    'XREADGROUP',
    'GROUP',
    GROUP,
    consumer,
    'COUNT',
    '256',
    'STREAMS',
    stream,
    after,
  ])) as StreamReply
  return got?.[0]?.[1] ?? []
}
