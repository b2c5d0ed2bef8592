import type { Kysely } from 'kysely'
import type { Logger } from 'pino'
import type { DB } from '../db/schema'
import { toError } from '../errors'
import type { Metrics } from '../obs/metrics'
import type { EventLog, SequencedEvent } from './event'
import { anyPending, claimPending, markSent, pruneSent } from './outbox-repository'

/**
 * The relay: moves committed events from the outbox (Postgres) to the event
 * log (Redis streams, or memory when embedded) and marks them sent. One per
 * instance; every instance relays every user's events, so what a dead
 * instance committed is relayed by the others at their next poll.
 *
 * A pass is one transaction: claim pending events under per-user advisory
 * locks (another relay's users are skipped), append them in seq order, mark
 * what the log holds as sent, commit (the locks go with it). One user's
 * events are relayed by one relay at a time, in order: the log refuses an
 * id at or below a stream's top, so a later event appended first would make
 * an earlier one unappendable. An event relayed twice (a pass whose commit
 * failed after its append) is refused by the log as present, not duplicated.
 *
 * States:
 *   idle ──wake() (a commit) or the poll timer──▶ relaying (passes until none is full)
 *   relaying ──pass failed──▶ backing off (doubling from backoffMs to maxBackoffMs;
 *     wake() waits for it) ──timer──▶ relaying
 *   any ──close()──▶ closed (timers stopped, the pass in flight awaited)
 */
export type OutboxRelayOptions = {
  db: Kysely<DB>
  events: EventLog
  log: Logger
  metrics?: Metrics
  /** How often an idle relay looks for events nobody woke it for (default 1000 ms). */
  pollMs?: number
  /** First retry delay after a failed pass, doubling up to maxBackoffMs (default 50 ms). */
  backoffMs?: number
  /** Longest retry delay (default 1000 ms: a returning Redis is used within a second). */
  maxBackoffMs?: number
  /** A pass's appends not acknowledged within this fail the pass (default 3000 ms). */
  appendTimeoutMs?: number
  /** Sent rows are kept this long, then pruned (default 300 s). */
  retentionSeconds?: number
  /** How often sent rows are pruned (default 10 000 ms). */
  pruneEveryMs?: number
  /** Users per pass (default 64). */
  maxUsers?: number
  /**
   * Events per user per pass (default 128: the Redis log's script size, so a
   * user's events of one pass are one script call and land whole or not at all).
   */
  perUser?: number
}

export type OutboxRelay = ReturnType<typeof makeOutboxRelay>

const PRUNE_BATCH = 10_000

export function makeOutboxRelay(options: OutboxRelayOptions) {
  const { db, events, log } = options
  const pollMs = options.pollMs ?? 1000
  const backoffMs = options.backoffMs ?? 50
  const maxBackoffMs = options.maxBackoffMs ?? 1000
  const appendTimeoutMs = options.appendTimeoutMs ?? 3000
  const retentionSeconds = options.retentionSeconds ?? 300
  const pruneEveryMs = options.pruneEveryMs ?? 10_000
  const maxUsers = options.maxUsers ?? 64
  const perUser = options.perUser ?? 128

  const m = options.metrics
  const relayed = m?.counter(
    'outbox_relayed_total',
    'Outbox events the log now holds, by outcome',
    ['outcome'],
  )
  const failedPasses = m?.counter('outbox_relay_failures_total', 'Relay passes that failed')

  let state: 'idle' | 'relaying' | 'backing off' | 'closed' = 'idle'
  let dirty = false
  let failures = 0
  let running: Promise<void> | undefined
  let retryTimer: ReturnType<typeof setTimeout> | undefined
  let lastPruneAt = performance.now()

  // not unref'd: close() stops it (with Bun 1.4.5 an unref'd interval here left a
  // test's pending Postgres reply unprocessed until some other timer fired)
  const pollTimer = setInterval(() => wake(), pollMs)

  function wake() {
    dirty = true
    if (state !== 'idle') return
    state = 'relaying'
    running = run()
  }

  async function run() {
    try {
      while (dirty && state === 'relaying') {
        dirty = false
        if ((await pass()) === 'full') dirty = true
      }
      failures = 0
      await maybePrune()
      if (state === 'relaying') state = 'idle'
      // woken meanwhile by a commit that came after the last claim
      if (dirty && state === 'idle') wake()
    } catch (error) {
      failedPasses?.inc()
      failures++
      if (state !== 'relaying') return
      const delay = Math.min(maxBackoffMs, backoffMs * 2 ** (failures - 1))
      log.warn({ err: toError(error), failures, retryInMs: delay }, 'outbox relay pass failed')
      state = 'backing off'
      dirty = true
      retryTimer = setTimeout(() => {
        if (state !== 'backing off') return
        state = 'idle'
        wake()
      }, delay)
    }
  }

  /**
   * One transaction: claim, append, mark sent. 'full' when more may be
   * waiting. An append that failed fails the pass after the commit, so what
   * the log took is marked sent either way.
   */
  async function pass(): Promise<'full' | 'done'> {
    if (!(await anyPending(db))) return 'done'
    const result = await db.transaction().execute(async (trx) => {
      const claimed = await claimPending(trx, maxUsers, perUser)
      if (claimed.length === 0) return { more: false, failure: undefined }
      const outcomes = await appendAll(claimed)
      // per user, sent up to the first event the log did not take (Redis's
      // script did not even try the rest of that user's events in the call)
      const upTo = new Map<string, number>()
      const stopped = new Set<string>()
      let failure: unknown
      claimed.forEach((e, i) => {
        const outcome = outcomes[i]!
        if (stopped.has(e.userId)) return
        if (outcome.status === 'rejected') {
          stopped.add(e.userId)
          failure ??= outcome.reason
          return
        }
        upTo.set(e.userId, e.seq)
        relayed?.inc({ outcome: outcome.value })
      })
      await markSent(trx, upTo)
      const perUserCounts = new Map<string, number>()
      for (const e of claimed) perUserCounts.set(e.userId, (perUserCounts.get(e.userId) ?? 0) + 1)
      const more =
        perUserCounts.size >= maxUsers || [...perUserCounts.values()].some((n) => n >= perUser)
      return { more, failure }
    })
    if (result.failure !== undefined) throw result.failure
    return result.more ? 'full' : 'done'
  }

  /** Every claimed event appended in this turn (the log sends them as few script calls), under one deadline. */
  async function appendAll(claimed: SequencedEvent[]) {
    let timer: ReturnType<typeof setTimeout> | undefined
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`event log did not answer within ${appendTimeoutMs} ms`)),
        appendTimeoutMs,
      )
    })
    const appends = claimed.map((e) => events.append(e))
    try {
      return await Promise.race([Promise.allSettled(appends), deadline])
    } finally {
      clearTimeout(timer)
    }
  }

  async function maybePrune() {
    const now = performance.now()
    if (now - lastPruneAt < pruneEveryMs) return
    lastPruneAt = now
    try {
      let pruned = 0
      for (let n = PRUNE_BATCH; n === PRUNE_BATCH && state === 'relaying'; pruned += n)
        n = await pruneSent(db, retentionSeconds, PRUNE_BATCH)
      if (pruned > 0) log.debug({ pruned }, 'outbox pruned')
    } catch (error) {
      log.warn({ err: toError(error) }, 'outbox prune failed')
    }
  }

  return {
    /** A commit wrote events: relay now (cheap when a pass is already running). */
    wake,

    /**
     * Drain stage: relays until nothing this relay can claim is pending, or
     * the budget is spent. What is left stays in the outbox for the others.
     */
    async flush(budgetMs = 2000) {
      const until = performance.now() + budgetMs
      while (performance.now() < until) {
        await running
        if (state !== 'idle') return false // backing off, or closed
        wake()
        await running
        if (!dirty && (state as string) === 'idle') return true
      }
      return false
    },

    async close() {
      state = 'closed'
      clearInterval(pollTimer)
      clearTimeout(retryTimer)
      await running?.catch(() => {})
    },
  }
}
