import type { Kysely } from 'kysely'
import type { Counter } from 'prom-client'
import type { Logger } from 'pino'
import type { DB } from '../db/schema'
import { toError } from '../errors'
import type { Metrics } from '../obs/metrics'
import type { AppendOutcome, EventLog, SequencedEvent } from './event'
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
export type OutboxRelayDeps = {
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

export function makeOutboxRelay(deps: OutboxRelayDeps) {
  const r: Relay = {
    deps,
    settings: relaySettings(deps),
    relayed: deps.metrics?.counter(
      'outbox_relayed_total',
      'Outbox events the log now holds, by outcome',
      ['outcome'],
    ),
    failedPasses: deps.metrics?.counter('outbox_relay_failures_total', 'Relay passes that failed'),
    state: 'idle',
    dirty: false,
    failures: 0,
    running: undefined,
    retryTimer: undefined,
    lastPruneAt: performance.now(),
  }
  // not unref'd: close() stops it (with Bun 1.4.5 an unref'd interval here left a
  // test's pending Postgres reply unprocessed until some other timer fired)
  const pollTimer = setInterval(() => wake(r), r.settings.pollMs)

  return {
    /** A commit wrote events: relay now (cheap when a pass is already running). */
    wake: () => wake(r),

    /**
     * Drain stage: relays until nothing this relay can claim is pending, or
     * the budget is spent. What is left stays in the outbox for the others.
     */
    async flush(budgetMs = 2000) {
      const until = performance.now() + budgetMs
      while (performance.now() < until) {
        await r.running
        if (r.state !== 'idle') return false // backing off, or closed
        wake(r)
        await r.running
        if (!r.dirty && (r.state as string) === 'idle') return true
      }
      return false
    },

    async close() {
      r.state = 'closed'
      clearInterval(pollTimer)
      clearTimeout(r.retryTimer)
      await r.running?.catch(() => {})
    },
  }
}

/** One relay's state (the states above), which the functions below move through. */
type Relay = {
  deps: OutboxRelayDeps
  settings: RelaySettings
  relayed: Counter<'outcome'> | undefined
  failedPasses: Counter | undefined
  state: 'idle' | 'relaying' | 'backing off' | 'closed'
  /** Events may be waiting that no pass has claimed yet. */
  dirty: boolean
  failures: number
  running: Promise<void> | undefined
  retryTimer: ReturnType<typeof setTimeout> | undefined
  lastPruneAt: number
}

function wake(r: Relay) {
  r.dirty = true
  if (r.state !== 'idle') return
  r.state = 'relaying'
  r.running = run(r)
}

async function run(r: Relay) {
  const { db, log } = r.deps
  try {
    while (r.dirty && r.state === 'relaying') {
      r.dirty = false
      if ((await relayPass(db, r.deps.events, r.settings, r.relayed)) === 'full') r.dirty = true
    }
    r.failures = 0
    const now = performance.now()
    if (now - r.lastPruneAt >= r.settings.pruneEveryMs) {
      r.lastPruneAt = now
      await prune(db, log, r.settings.retentionSeconds, () => r.state === 'relaying')
    }
    if (r.state === 'relaying') r.state = 'idle'
    // woken meanwhile by a commit that came after the last claim
    if (r.dirty && r.state === 'idle') wake(r)
  } catch (error) {
    r.failedPasses?.inc()
    r.failures++
    if (r.state === 'relaying') backOff(r, error)
  }
}

/** After a failed pass: the next one after a delay doubling from backoffMs to maxBackoffMs. */
function backOff(r: Relay, error: unknown) {
  const { backoffMs, maxBackoffMs } = r.settings
  const delay = Math.min(maxBackoffMs, backoffMs * 2 ** (r.failures - 1))
  r.deps.log.warn(
    { err: toError(error), failures: r.failures, retryInMs: delay },
    'outbox relay pass failed',
  )
  r.state = 'backing off'
  r.dirty = true
  r.retryTimer = setTimeout(() => {
    if (r.state !== 'backing off') return
    r.state = 'idle'
    wake(r)
  }, delay)
}

/** The deps' figures with their defaults. */
function relaySettings(deps: OutboxRelayDeps) {
  return {
    pollMs: deps.pollMs ?? 1000,
    backoffMs: deps.backoffMs ?? 50,
    maxBackoffMs: deps.maxBackoffMs ?? 1000,
    appendTimeoutMs: deps.appendTimeoutMs ?? 3000,
    retentionSeconds: deps.retentionSeconds ?? 300,
    pruneEveryMs: deps.pruneEveryMs ?? 10_000,
    maxUsers: deps.maxUsers ?? 64,
    perUser: deps.perUser ?? 128,
  }
}

type RelaySettings = ReturnType<typeof relaySettings>
type PassLimits = Pick<RelaySettings, 'maxUsers' | 'perUser' | 'appendTimeoutMs'>

/**
 * One transaction: claim, append, mark sent. 'full' when more may be
 * waiting. An append that failed fails the pass after the commit, so what
 * the log took is marked sent either way.
 */
async function relayPass(
  db: Kysely<DB>,
  events: EventLog,
  limits: PassLimits,
  relayed: Counter<'outcome'> | undefined,
): Promise<'full' | 'done'> {
  if (!(await anyPending(db))) return 'done'
  const result = await db.transaction().execute(async (trx) => {
    const claimed = await claimPending(trx, limits.maxUsers, limits.perUser)
    if (claimed.length === 0) return { more: false, failure: undefined }
    const outcomes = await appendAll(events, claimed, limits.appendTimeoutMs)
    const { upTo, failure } = sentUpTo(claimed, outcomes, relayed)
    await markSent(trx, upTo)
    return { more: isFull(claimed, limits), failure }
  })
  if (result.failure !== undefined) throw result.failure
  return result.more ? 'full' : 'done'
}

/** Every claimed event appended in this turn (the log sends them as few script calls), under one deadline. */
async function appendAll(events: EventLog, claimed: SequencedEvent[], timeoutMs: number) {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`event log did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    )
  })
  const appends = claimed.map((e) => events.append(e))
  try {
    return await Promise.race([Promise.allSettled(appends), deadline])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Per user, the seq sent up to: up to the first event the log did not take
 * (Redis's script did not even try the rest of that user's events in the
 * call), with the first failure.
 */
function sentUpTo(
  claimed: SequencedEvent[],
  outcomes: PromiseSettledResult<AppendOutcome>[],
  relayed: Counter<'outcome'> | undefined,
) {
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
  return { upTo, failure }
}

/** The claim hit a limit: as many users as a pass takes, or a user's full share. */
function isFull(claimed: SequencedEvent[], limits: PassLimits) {
  const perUserCounts = new Map<string, number>()
  for (const e of claimed) perUserCounts.set(e.userId, (perUserCounts.get(e.userId) ?? 0) + 1)
  return (
    perUserCounts.size >= limits.maxUsers ||
    [...perUserCounts.values()].some((n) => n >= limits.perUser)
  )
}

/** Sent rows older than the retention, PRUNE_BATCH at a time while `going()`; a failure is logged. */
async function prune(db: Kysely<DB>, log: Logger, retentionSeconds: number, going: () => boolean) {
  try {
    let pruned = 0
    for (let n = PRUNE_BATCH; n === PRUNE_BATCH && going(); pruned += n)
      n = await pruneSent(db, retentionSeconds, PRUNE_BATCH)
    if (pruned > 0) log.debug({ pruned }, 'outbox pruned')
  } catch (error) {
    log.warn({ err: toError(error) }, 'outbox prune failed')
  }
}
