import type { Logger } from '../obs/logger'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import type { Envelope, Reply } from './envelope'
import { makeInbox } from './inbox'
import { takeOverInbox } from './inbox-takeover'
import { makeSender } from './sender'
import { ensureGroup } from './streams'

/**
 * Commands between instances over Redis streams. Each instance has one
 * inbox stream and one reply stream, both read by one consumer-group reader
 * on its own connection (inbox.ts: one blocking XREADGROUP over the two). A
 * sender XADDs an envelope to the owner's inbox (sender.ts; NOMKSTREAM: an
 * inbox that is gone, its instance drained or taken over, is an answer at
 * once, not a wait) and awaits the reply with the envelope's id on its own
 * reply stream. An inbox entry is acknowledged after its reply is written,
 * so the entries of an instance killed mid-way stay pending, and the
 * instance that takes over its inbox processes them (inbox-takeover.ts).
 *
 * States: reading ──close()──▶ closing (no new read; the inbox and reply
 * streams are deleted, so senders see them gone) ──▶ closed.
 */
export type ForwardingDeps = {
  /** Shared connection: XADD, XACK, takeovers. */
  redis: Redis
  /** Dedicated connection for the blocking read (one per instance). */
  reader: Redis
  keys: RedisKeys
  instanceId: string
  /** Deadline of the XADD that sends (a Redis that stopped answering is a 503, not a hang). */
  timeoutMs: number
  log: Logger
  /** Processes an inbox entry (this instance's or a dead one's) and says what to answer. */
  receive: (envelope: Envelope) => Promise<Reply | undefined>
}

export type Forwarding = Awaited<ReturnType<typeof makeForwarding>>

export async function makeForwarding(deps: ForwardingDeps) {
  const { redis, keys, instanceId: me } = deps
  await ensureGroup(redis, keys.instanceInbox(me))
  await ensureGroup(redis, keys.instanceReplies(me))
  const sender = makeSender(deps)
  const inbox = makeInbox({ ...deps, settleReplies: sender.settleReplies })
  return {
    send: sender.send,
    takeOver: (dead: string) =>
      takeOverInbox({ redis, keys, instanceId: me, handle: inbox.handle }, dead),
    /** Replies still awaited. */
    get waiting() {
      return sender.waiting
    },
    close: inbox.close,
  }
}
