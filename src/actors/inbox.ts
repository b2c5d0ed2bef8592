import { toError } from '../errors'
import type { Logger } from '../obs/logger'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import { makeCoalescer } from './coalesce'
import type { Envelope, Reply } from './envelope'
import { ensureGroup, GROUP, readGroup, type Entry, type StreamReply } from './streams'
import { encodeError } from './wire'

/**
 * The receiving side of forwarding: one consumer-group reader on its own
 * connection, one blocking XREADGROUP over this instance's inbox and reply
 * streams. An inbox entry (one envelope, or an array of them) goes to
 * `receive`; its replies are written to each sender's reply stream, and the
 * entry is acknowledged after that, so the entries of an instance killed
 * mid-way stay pending for whoever takes its inbox over (inbox-takeover.ts).
 *
 * States: recovering (entries a previous process with this id read and never
 * acknowledged) ──▶ reading ──close()──▶ closing (no new read; what is left
 * is read and both streams deleted in one transaction, so senders see them
 * gone; the entries in hand are answered) ──▶ closed.
 */
export type InboxDeps = {
  redis: Redis
  /** Dedicated connection for the blocking read (one per instance). */
  reader: Redis
  keys: RedisKeys
  instanceId: string
  log: Logger
  /** Processes an inbox entry (this instance's or a dead one's) and says what to answer. */
  receive: (envelope: Envelope) => Promise<Reply | undefined>
  /** Entries of this instance's reply stream (sender.ts). */
  settleReplies: (entries: Entry[]) => void
}

const READ_COUNT = 512
const BLOCK_MS = 1000
const REPLIES_MAX = 10_000

export type Inbox = ReturnType<typeof makeInbox>

type InboxState = InboxDeps & {
  inbox: string
  replies: string
  answer: (envelope: Envelope, reply: Reply) => Promise<void>
  /** Entries being handled: close() waits for their replies before the connection goes. */
  handling: Set<Promise<void>>
  closing: boolean
}

export function makeInbox(deps: InboxDeps) {
  const state: InboxState = {
    ...deps,
    inbox: deps.keys.instanceInbox(deps.instanceId),
    replies: deps.keys.instanceReplies(deps.instanceId),
    answer: makeReplier(deps.redis, deps.keys),
    handling: new Set(),
    closing: false,
  }
  const reading = readLoop(state)
  return {
    /** One entry of any inbox (a dead instance's too, inbox-takeover.ts), answered and acknowledged. */
    handle: (stream: string, entry: Entry) => handleEntry(state, stream, entry),
    async close() {
      state.closing = true
      // the blocking read ends within BLOCK_MS
      await reading
      await closeStreams(state)
    },
  }
}

/** Replies to one sender go at once, or coalesced per turn while one to it is in flight, as sends do. */
function makeReplier(redis: Redis, keys: RedisKeys) {
  type Outgoing = { reply: string; done: PromiseWithResolvers<void> }
  const replying = makeCoalescer<Outgoing>((to, batch) => {
    const body = `[${batch.map((r) => r.reply).join(',')}]`
    const stream = keys.instanceReplies(to)
    // NOMKSTREAM: a sender that is gone (closed, taken over) has no reply stream, and an
    // answer to it must not make one that nobody reads or deletes
    return redis
      .sendCommand([
        ...['XADD', stream, 'NOMKSTREAM', 'MAXLEN', '~', String(REPLIES_MAX)],
        ...['*', 'r', body],
      ])
      .then(
        () => batch.forEach((r) => r.done.resolve()),
        (err: Error) => batch.forEach((r) => r.done.reject(err)),
      )
  })

  return (envelope: Envelope, reply: Reply): Promise<void> => {
    const done = Promise.withResolvers<void>()
    replying.push(envelope.from, { reply: JSON.stringify({ id: envelope.id, ...reply }), done })
    return done.promise
  }
}

/** Processes one entry of `stream` and acknowledges it once every reply is written. */
async function handleEntry(state: InboxState, stream: string, [entryId, fields]: Entry) {
  const { redis, log } = state
  let envelopes: Envelope[]
  try {
    const v = JSON.parse(fields[1]!) as Envelope | Envelope[]
    envelopes = Array.isArray(v) ? v : [v]
  } catch {
    log.error({ stream, entryId }, 'unreadable inbox entry dropped')
    await done(redis, stream, entryId)
    return
  }
  try {
    await Promise.all(
      envelopes.map(async (envelope) => {
        // the sender gave up: nothing of it runs (it answered 503; a retry is the client's)
        if (Date.now() > envelope.deadline) return
        const reply = await receiveOrFail(state, envelope)
        if (reply) await state.answer(envelope, reply)
      }),
    )
    await done(redis, stream, entryId)
  } catch (err) {
    // a reply or the XACK not written (Redis failed): left pending, whoever takes this
    // inbox over processes it again, and its ids make that a replay (DESIGN.md invariant 4)
    log.warn({ err, stream, entryId }, 'inbox entry not answered')
  }
}

/**
 * An entry answered: acknowledged, and deleted from the stream, which would
 * otherwise keep every envelope ever sent to this instance (the pending list
 * is what a takeover needs, and an acknowledged entry has left it).
 */
function done(redis: Redis, stream: string, entryId: string) {
  return Promise.all([
    redis.sendCommand(['XACK', stream, GROUP, entryId]),
    redis.sendCommand(['XDEL', stream, entryId]),
  ])
}

/**
 * What to answer: `receive`'s reply, or, when handling it failed here, that
 * failure as this instance's edge would answer it. Its sender answers at
 * once rather than at its deadline, and the error is logged here, where it
 * happened, with what the sender never sees.
 */
async function receiveOrFail(state: InboxState, envelope: Envelope): Promise<Reply | undefined> {
  try {
    return await state.receive(envelope)
  } catch (err) {
    const error = toError(err)
    state.log.error({ err: error, key: envelope.key, op: envelope.op }, 'inbox entry failed here')
    return { failed: encodeError(error) }
  }
}

function track(state: InboxState, p: Promise<void>) {
  state.handling.add(p)
  void p.finally(() => state.handling.delete(p))
}

/**
 * Entries this consumer read and never acknowledged: a previous process
 * with the same instance id (a Fly machine restarted) died with them. One
 * pass, in id order, before the first new read; each is handled as a new one
 * is, not waited for here, since handling one may forward its command and
 * wait for a reply that only the read loop after this reads.
 */
async function recoverOwn(state: InboxState) {
  for (let after = '0'; ;) {
    const entries = await readGroup(state.reader, state.inbox, state.instanceId, after)
    if (entries.length === 0) return
    for (const entry of entries) track(state, handleEntry(state, state.inbox, entry))
    after = entries.at(-1)![0]
  }
}

async function readLoop(state: InboxState) {
  const { redis, reader, inbox, replies, log } = state
  await recoverOwn(state).catch((err) => log.warn({ err }, 'recovering own inbox entries failed'))
  let backoff = 50
  while (!state.closing) {
    try {
      const got = (await reader.sendCommand([
        ...['XREADGROUP', 'GROUP', GROUP, state.instanceId, 'COUNT', String(READ_COUNT)],
        ...['BLOCK', String(BLOCK_MS), 'STREAMS', inbox, replies, '>', '>'],
      ])) as StreamReply
      backoff = 50
      for (const [stream, entries] of got ?? []) {
        if (stream === replies) state.settleReplies(entries)
        else for (const entry of entries) track(state, handleEntry(state, inbox, entry))
      }
    } catch (err) {
      if (state.closing) break
      // our own streams went away (a takeover after we were frozen past the lease): back
      if (String((err as Error).message).includes('NOGROUP'))
        await Promise.all([ensureGroup(redis, inbox), ensureGroup(redis, replies)]).catch(() => {})
      else log.warn({ err }, 'inbox read failed')
      await Bun.sleep(backoff)
      backoff = Math.min(backoff * 2, 1000)
    }
  }
}

/**
 * After the last read: what is left is read and the inbox deleted in one
 * transaction, so no entry can land in between and wait for nobody; a sender
 * after it finds the inbox gone (NOMKSTREAM) and routes again at once. Then
 * every entry in hand is answered.
 */
async function closeStreams(state: InboxState) {
  const { redis, inbox, replies } = state
  try {
    const [left] = (await redis
      .multi()
      .addCommand(['XREADGROUP', 'GROUP', GROUP, state.instanceId, 'STREAMS', inbox, '>'])
      .addCommand(['DEL', inbox, replies])
      .exec()) as unknown as [StreamReply]
    for (const entry of left?.[0]?.[1] ?? []) track(state, handleEntry(state, inbox, entry))
  } catch (err) {
    state.log.warn({ err }, 'closing the inbox failed')
  }
  await Promise.allSettled([...state.handling])
}
