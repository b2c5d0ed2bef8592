import type { Logger } from '../obs/logger'
import { withDeadline, type Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import { makeCoalescer, type Coalescer } from './coalesce'
import { InboxGone, ReplyTimeout, type Envelope, type Reply } from './envelope'
import { GROUP, type Entry } from './streams'

/**
 * The sending side of forwarding: envelopes out to an owner's inbox, and
 * the replies that come back on this instance's reply stream, matched to
 * their envelope by correlation id.
 *
 * Per envelope: sent at once, or (an XADD to its target in flight) queued
 *   for this turn's entry (coalesce.ts) ──XADD──▶ awaiting its reply
 *   ──reply──▶ answered | ──timeout──▶ ReplyTimeout | ──gone/failed──▶ rejected
 * Nothing here holds a timer past its envelope's answer.
 */
export type SenderDeps = {
  redis: Redis
  keys: RedisKeys
  instanceId: string
  /** Deadline of the XADD that sends (a Redis that stopped answering is a 503, not a hang). */
  timeoutMs: number
  log: Logger
}

type Outgoing = { envelope: Envelope; fail: (err: Error) => void }

type SenderState = SenderDeps & {
  /** Sends awaiting their reply, by correlation id. */
  waiting: Map<string, (reply: Reply) => void>
  /**
   * Group sending: the envelopes of one turn that arrive for one target
   * while an XADD to it is in flight go as one stream entry (a JSON array),
   * so a hot user's 256 forwarded commands cost two XADDs, not 256; a lone
   * one goes at once.
   */
  outgoing: Coalescer<Outgoing>
}

export function makeSender(deps: SenderDeps) {
  const state: SenderState = {
    ...deps,
    waiting: new Map(),
    outgoing: makeCoalescer((target, batch) => write(state, target, batch)),
  }
  return {
    /** Sends and awaits the reply, up to `timeoutMs`; rejects with InboxGone, ReplyTimeout, or the XADD's error. */
    send: (target: string, envelope: Envelope, timeoutMs: number) =>
      send(state, target, envelope, timeoutMs),
    /** Entries read from this instance's reply stream: each settles the sends it answers. */
    settleReplies: (entries: Entry[]) => settleReplies(state, entries),
    /** Replies still awaited. */
    get waiting() {
      return state.waiting.size
    },
  }
}

function send(state: SenderState, target: string, envelope: Envelope, timeoutMs: number) {
  const { waiting } = state
  return new Promise<Reply>((resolve, reject) => {
    const timer = setTimeout(() => {
      waiting.delete(envelope.id)
      reject(new ReplyTimeout(timeoutMs))
    }, timeoutMs)
    waiting.set(envelope.id, (reply) => {
      clearTimeout(timer)
      waiting.delete(envelope.id)
      resolve(reply)
    })
    const fail = (err: Error) => {
      if (!waiting.has(envelope.id)) return
      clearTimeout(timer)
      waiting.delete(envelope.id)
      reject(err)
    }
    state.outgoing.push(target, { envelope, fail })
  })
}

/** One inbox entry; settles once the XADD answered (until then the target counts as in flight). */
function write(state: SenderState, target: string, batch: Outgoing[]) {
  const body = JSON.stringify(batch.map((o) => o.envelope))
  const inbox = state.keys.instanceInbox(target)
  return withDeadline(state.timeoutMs, 'forward', () =>
    state.redis.sendCommand(['XADD', inbox, 'NOMKSTREAM', '*', 'e', body]),
  ).then(
    (id) => {
      if (id === null) for (const o of batch) o.fail(new InboxGone(target))
    },
    (err: Error) => {
      for (const o of batch) o.fail(err)
    },
  )
}

function settleReplies(state: SenderState, entries: Entry[]) {
  for (const [, fields] of entries) {
    try {
      const v = JSON.parse(fields[1]!) as ({ id: string } & Reply) | ({ id: string } & Reply)[]
      for (const { id, ...reply } of Array.isArray(v) ? v : [v]) state.waiting.get(id)?.(reply)
    } catch {
      state.log.warn('unreadable reply dropped')
    }
  }
  const ids = entries.map(([id]) => id)
  const replies = state.keys.instanceReplies(state.instanceId)
  if (ids.length) void state.redis.sendCommand(['XACK', replies, GROUP, ...ids]).catch(() => {})
}
