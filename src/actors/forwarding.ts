import type { Logger } from '../obs/logger'
import { withDeadline, type Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'

/**
 * Commands between instances over Redis streams. Each instance has one
 * inbox stream and one reply stream, both read by one consumer-group reader
 * on its own connection (one blocking XREADGROUP over the two streams). A
 * sender XADDs an envelope to the owner's inbox (NOMKSTREAM: an inbox that
 * is gone, its instance drained or taken over, is an answer at once, not a
 * wait) and awaits the reply with the envelope's id on its own reply
 * stream. An inbox entry is acknowledged after its reply is written, so the
 * entries of an instance killed mid-way stay pending, and the instance that
 * takes over its inbox processes them (XAUTOCLAIM, then what was never read).
 *
 * States: reading ──close()──▶ closing (no new read; the inbox and reply
 * streams are deleted, so senders see them gone) ──▶ closed.
 */
export type Envelope = {
  /** Correlation id: the reply carries it. */
  id: string
  /** The sender's instance id: where the reply goes. */
  from: string
  key: string
  /** The owner's epoch as the sender saw it (0: unknown). */
  epoch: number
  /** Milliseconds since 1970 after which the sender no longer waits. */
  deadline: number
  hops: number
  /** The command, encoded by the runtime's wire codec. */
  command: string
}

/** What the receiver answers: the outcome, encoded, or "not mine" (the sender re-routes). */
export type Reply = { outcome: string } | { moved: true }

export class InboxGone extends Error {
  constructor(instanceId: string) {
    super(`the inbox of ${instanceId} is gone`)
    this.name = 'InboxGone'
  }
}

export class ReplyTimeout extends Error {
  constructor(ms: number) {
    super(`no reply within ${ms} ms`)
    this.name = 'ReplyTimeout'
  }
}

const GROUP = 'actors'
const READ_COUNT = 512
const BLOCK_MS = 1000
const REPLIES_MAX = 10_000

type Entry = [id: string, fields: string[]]
type StreamReply = [stream: string, entries: Entry[]][] | null

export type Forwarding = Awaited<ReturnType<typeof makeForwarding>>

export async function makeForwarding(deps: {
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
}) {
  const { redis, reader, keys, instanceId: me, log } = deps
  const inbox = keys.instanceInbox(me)
  const replies = keys.instanceReplies(me)
  const waiting = new Map<string, (reply: Reply) => void>()
  let closing = false

  async function ensureGroup(stream: string) {
    try {
      // only ever for this instance's own streams: a dead instance's inbox must not come back
      await redis.sendCommand(['XGROUP', 'CREATE', stream, GROUP, '0', 'MKSTREAM'])
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err
    }
  }
  await ensureGroup(inbox)
  await ensureGroup(replies)

  /**
   * Group sending: envelopes for one target in one turn of the event loop go
   * as one stream entry (a JSON array), and replies to one sender likewise,
   * so a hot user's 256 forwarded commands cost one XADD each way, not 256.
   */
  type Outgoing = { envelope: Envelope; fail: (err: Error) => void }
  const outgoing = new Map<string, Outgoing[]>()
  const replying = new Map<string, { reply: string; done: PromiseWithResolvers<void> }[]>()

  function flushSends(target: string) {
    const batch = outgoing.get(target)!
    outgoing.delete(target)
    const body = JSON.stringify(batch.map((o) => o.envelope))
    withDeadline(deps.timeoutMs, 'forward', () =>
      redis.sendCommand(['XADD', keys.instanceInbox(target), 'NOMKSTREAM', '*', 'e', body]),
    ).then(
      (id) => {
        if (id === null) for (const o of batch) o.fail(new InboxGone(target))
      },
      (err: Error) => {
        for (const o of batch) o.fail(err)
      },
    )
  }

  /** Sends and awaits the reply, up to `timeoutMs`; rejects with InboxGone, ReplyTimeout, or the XADD's error. */
  function send(target: string, envelope: Envelope, timeoutMs: number): Promise<Reply> {
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
      let batch = outgoing.get(target)
      if (!batch) {
        outgoing.set(target, (batch = []))
        setImmediate(() => flushSends(target))
      }
      batch.push({ envelope, fail })
    })
  }

  function flushReplies(to: string) {
    const batch = replying.get(to)!
    replying.delete(to)
    const body = `[${batch.map((r) => r.reply).join(',')}]`
    redis
      .sendCommand([
        'XADD',
        keys.instanceReplies(to),
        'MAXLEN',
        '~',
        String(REPLIES_MAX),
        '*',
        'r',
        body,
      ])
      .then(
        () => batch.forEach((r) => r.done.resolve()),
        (err: Error) => batch.forEach((r) => r.done.reject(err)),
      )
  }

  function answer(envelope: Envelope, reply: Reply): Promise<void> {
    const done = Promise.withResolvers<void>()
    let batch = replying.get(envelope.from)
    if (!batch) {
      replying.set(envelope.from, (batch = []))
      setImmediate(() => flushReplies(envelope.from))
    }
    batch.push({ reply: JSON.stringify({ id: envelope.id, ...reply }), done })
    return done.promise
  }

  /**
   * Processes one inbox entry of `stream` (one envelope, or an array of them)
   * and acknowledges it once every reply is written.
   */
  async function handle(stream: string, [entryId, fields]: Entry) {
    let envelopes: Envelope[]
    try {
      const v = JSON.parse(fields[1]!) as Envelope | Envelope[]
      envelopes = Array.isArray(v) ? v : [v]
    } catch {
      log.error({ stream, entryId }, 'unreadable inbox entry dropped')
      await redis.sendCommand(['XACK', stream, GROUP, entryId])
      return
    }
    try {
      await Promise.all(
        envelopes.map(async (envelope) => {
          // the sender gave up: nothing of it runs (it answered 503; a retry is the client's)
          if (Date.now() > envelope.deadline) return
          const reply = await deps.receive(envelope)
          if (reply) await answer(envelope, reply)
        }),
      )
      await redis.sendCommand(['XACK', stream, GROUP, entryId])
    } catch (err) {
      // left pending: whoever takes this inbox over processes it again, and its ids make
      // that a replay (DESIGN.md invariant 4)
      log.warn({ err, stream, entryId }, 'inbox entry not answered')
    }
  }

  function settleReplies(entries: Entry[]) {
    for (const [, fields] of entries) {
      try {
        const v = JSON.parse(fields[1]!) as ({ id: string } & Reply) | ({ id: string } & Reply)[]
        for (const { id, ...reply } of Array.isArray(v) ? v : [v]) waiting.get(id)?.(reply)
      } catch {
        log.warn('unreadable reply dropped')
      }
    }
    const ids = entries.map(([id]) => id)
    if (ids.length) void redis.sendCommand(['XACK', replies, GROUP, ...ids]).catch(() => {})
  }

  /** One page (256) of `stream` as this consumer: `after` an id of its pending entries, or '>' for new ones. */
  async function readGroup(client: Redis, stream: string, after: string) {
    const got = (await client.sendCommand([
      'XREADGROUP',
      'GROUP',
      GROUP,
      me,
      'COUNT',
      '256',
      'STREAMS',
      stream,
      after,
    ])) as StreamReply
    return got?.[0]?.[1] ?? []
  }

  /**
   * Entries this consumer read and never acknowledged: a previous process
   * with the same instance id (a Fly machine restarted) died with them. One
   * pass, in id order, before the first new read.
   */
  async function recoverOwn() {
    let after = '0'
    for (;;) {
      const entries = await readGroup(reader, inbox, after)
      if (entries.length === 0) return
      await Promise.all(entries.map((e) => handle(inbox, e)))
      after = entries.at(-1)![0]
    }
  }

  /** Entries being handled: close() waits for their replies before the connection goes. */
  const handling = new Set<Promise<void>>()
  function track(p: Promise<void>) {
    handling.add(p)
    void p.finally(() => handling.delete(p))
  }

  async function loop() {
    await recoverOwn().catch((err) => log.warn({ err }, 'recovering own inbox entries failed'))
    let backoff = 50
    while (!closing) {
      try {
        const got = (await reader.sendCommand([
          'XREADGROUP',
          'GROUP',
          GROUP,
          me,
          'COUNT',
          String(READ_COUNT),
          'BLOCK',
          String(BLOCK_MS),
          'STREAMS',
          inbox,
          replies,
          '>',
          '>',
        ])) as StreamReply
        backoff = 50
        for (const [stream, entries] of got ?? []) {
          if (stream === replies) settleReplies(entries)
          else for (const entry of entries) track(handle(inbox, entry))
        }
      } catch (err) {
        if (closing) break
        // our own streams went away (a takeover after we were frozen past the lease): back
        if (String((err as Error).message).includes('NOGROUP'))
          await Promise.all([ensureGroup(inbox), ensureGroup(replies)]).catch(() => {})
        else log.warn({ err }, 'inbox read failed')
        await Bun.sleep(backoff)
        backoff = Math.min(backoff * 2, 1000)
      }
    }
  }
  const reading = loop()

  /**
   * Processes what a dead instance left in its inbox: entries it read and
   * never acknowledged (XAUTOCLAIM), then entries it never read; then deletes
   * its streams. One instance does it (a lock in Redis). Returns how many.
   */
  async function takeOver(dead: string): Promise<number> {
    const lock = keys.actorTakeover(dead)
    const got = await redis.set(lock, me, { NX: true, PX: 30_000 })
    if (got === null) return 0
    const stream = keys.instanceInbox(dead)
    let n = 0
    try {
      if ((await redis.exists(stream)) === 1) {
        for (let cursor = '0-0'; ;) {
          const [next, entries] = (await redis.sendCommand([
            'XAUTOCLAIM',
            stream,
            GROUP,
            me,
            '0',
            cursor,
            'COUNT',
            '256',
          ])) as [string, (Entry | null)[]]
          const live = entries.filter((e): e is Entry => e !== null)
          await Promise.all(live.map((e) => handle(stream, e)))
          n += live.length
          cursor = next
          if (next === '0-0') break
        }
        for (;;) {
          const entries = await readGroup(redis, stream, '>')
          if (entries.length === 0) break
          await Promise.all(entries.map((e) => handle(stream, e)))
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

  return {
    send,
    takeOver,
    /** Replies still awaited. */
    get waiting() {
      return waiting.size
    },
    async close() {
      closing = true
      // the blocking read ends within BLOCK_MS. Then what is left is read and the inbox
      // deleted in one transaction, so no entry can land in between and wait for nobody;
      // a sender after it finds the inbox gone (NOMKSTREAM) and routes again at once
      await reading
      try {
        const [left] = (await redis
          .multi()
          .addCommand(['XREADGROUP', 'GROUP', GROUP, me, 'STREAMS', inbox, '>'])
          .addCommand(['DEL', inbox, replies])
          .exec()) as unknown as [StreamReply]
        for (const entry of left?.[0]?.[1] ?? []) track(handle(inbox, entry))
      } catch (err) {
        log.warn({ err }, 'closing the inbox failed')
      }
      await Promise.allSettled([...handling])
    },
  }
}
