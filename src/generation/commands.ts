import type { Kysely, Transaction } from 'kysely'
import type { BatchHandler, Outcome } from '../actors/actor-system'
import { inBatch, outsideBatch } from '../db/batch-scope'
import type { DB } from '../db/schema'
import { toCommandError } from '../db/errors'
import { NotFound, RateLimited } from '../errors'
import type { NewEvent, Outbox } from '../events/outbox'
import type { LedgerCommand, LedgerResult } from '../ledger/commands'
import { ledgerKeys } from '../ledger/keys'
import type { MediaUrls } from '../media/signed-urls'
import { presentItem } from './present'
import * as repo from './repository'
import type { GenerationRequest, GenerationRow, GenerationStatus } from './table'

/**
 * The user actor's generation commands. Each runs in one transaction that
 * first takes the user's account row lock (through the ledger port), so
 * limits, charge, rows and refunds are decided one at a time per user even
 * across instances. Events are written into the outbox in the same
 * transaction (a charge's or refund's credits.changed by ledger_apply itself),
 * so they exist exactly when the change does.
 */
export type ItemResult =
  | {
      status: 'succeeded'
      imageMediaId: string
      thumbnailMediaId: string
      exports: Record<string, string>
    }
  | { status: 'failed'; code: string; message: string }

export type GenerationCommand =
  | {
      kind: 'start'
      generationId: string
      request: GenerationRequest
      items: repo.NewItem[]
      pricePerItem: number
      /** From the database's now() at insert; null: no deadline. */
      deadlineSeconds: number | null
      /** Idempotency: the same key charges and creates once. */
      commandKey: string
    }
  | { kind: 'cancel'; generationId: string; reason: 'user' | 'deadline' }
  | { kind: 'started'; generationId: string; items: { id: string; key: string }[] }
  /** owner null: the sweeper ends an item whose lease expired with no attempts left. */
  | { kind: 'outcome'; itemId: string; owner: string | null; result: ItemResult }

export type GenerationMessage = { type: 'generation'; command: GenerationCommand }
export type GenerationResult = { generationId: string; applied: boolean }

/** What the generation room may do with credits: only through the ledger's own write path. */
export type LedgerPort = {
  lock(trx: Transaction<DB>, userId: string): Promise<unknown>
  /** The account lock, and the fencing check of the owner's epoch under it. */
  fence(trx: Transaction<DB>, userId: string, epoch: number): Promise<unknown>
  apply(
    trx: Transaction<DB>,
    userId: string,
    commands: LedgerCommand[],
  ): Promise<Outcome<LedgerResult>[]>
}

export type GenerationHandlerDeps = {
  db: Kysely<DB>
  ledger: LedgerPort
  outbox: Outbox
  /** Signs the item URLs events carry, as the REST item's. */
  urls: Pick<MediaUrls, 'url'>
  limits: { imagesPerHour: number; activeGenerations: number }
}

type Effects = NewEvent[]

export function generationHandler(
  deps: GenerationHandlerDeps,
): BatchHandler<GenerationMessage, GenerationResult> {
  const { db, ledger } = deps

  async function run(
    userId: string,
    command: GenerationCommand,
    epoch: number | undefined,
  ): Promise<GenerationResult> {
    const effects: Effects = []
    const result = await db.transaction().execute(async (trx) => {
      // money moves: take the account lock first, so two instances cannot
      // deadlock on one user; then a generation and its items (cancel) or an
      // item and its generation (outcome): cancel takes only queued items and
      // an outcome only its running one, so the two never wait on each other.
      // Fenced (cluster mode): every command takes that lock and checks its
      // owner's epoch under it first (AF001 when stale: nothing is written)
      if (epoch !== undefined) await ledger.fence(trx, userId, epoch)
      else if (movesMoney(command)) await ledger.lock(trx, userId)
      const result = await apply(trx, userId, command, effects)
      // the events commit with the change they describe (the outbox)
      await deps.outbox.write(trx, userId, effects)
      return result
    })
    // the relay's wake-up is not part of this batch: its work must not follow the batch's signal
    outsideBatch(deps.outbox.committed)
    return result
  }

  function apply(
    trx: Transaction<DB>,
    userId: string,
    command: GenerationCommand,
    effects: Effects,
  ): Promise<GenerationResult> {
    switch (command.kind) {
      case 'start':
        return start(trx, userId, command, effects)
      case 'cancel':
        return cancel(trx, userId, command.generationId, effects)
      case 'started':
        return started(trx, userId, command, effects)
      case 'outcome':
        return outcome(trx, userId, command, effects)
      default:
        throw new Error(`unknown generation command ${(command as { kind: string }).kind}`)
    }
  }

  async function start(
    trx: Transaction<DB>,
    userId: string,
    c: Extract<GenerationCommand, { kind: 'start' }>,
    effects: Effects,
  ) {
    const total = c.pricePerItem * c.items.length
    const [charge] = await ledger.apply(trx, userId, [
      {
        kind: 'charge',
        amount: total,
        reason: `generation ${c.generationId}`,
        key: ledgerKeys.generationCharge(c.commandKey),
        generationId: c.generationId,
      },
    ])
    if (!charge!.ok) {
      // a rate limit says more than "not enough credits": check limits first when charging fails too
      await checkLimits(trx, userId, c.items.length)
      throw charge!.error
    }
    if (charge!.value.replayed)
      return { generationId: charge!.value.entry.generationId!, applied: false }
    await checkLimits(trx, userId, c.items.length)
    await repo.insertGeneration(trx, {
      id: c.generationId,
      userId,
      request: c.request,
      pricePerItem: c.pricePerItem,
      chargeEntryId: charge!.value.entry.id,
      deadlineSeconds: c.deadlineSeconds,
      items: c.items,
    })
    // credits.changed for the charge is already in the outbox (ledger_apply)
    effects.push({
      name: 'generation.queued',
      data: { generationId: c.generationId, totalItems: c.items.length, creditsCharged: total },
    })
    return { generationId: c.generationId, applied: true }
  }

  async function checkLimits(trx: Transaction<DB>, userId: string, newImages: number) {
    const hour = await repo.imagesInLastHour(trx, userId)
    if (hour.images + newImages > deps.limits.imagesPerHour) {
      throw new RateLimited(
        hour.freesInSeconds,
        `At most ${deps.limits.imagesPerHour} images per hour`,
      )
    }
    if ((await repo.activeGenerations(trx, userId)) >= deps.limits.activeGenerations)
      throw new RateLimited(
        10,
        `At most ${deps.limits.activeGenerations} unfinished generations at once`,
      )
  }

  async function cancel(
    trx: Transaction<DB>,
    userId: string,
    generationId: string,
    effects: Effects,
  ) {
    const gen = await repo.lockGeneration(trx, generationId, userId)
    if (!gen) throw new NotFound('Generation')
    const cancelled = await repo.cancelQueuedItems(trx, generationId)
    if (cancelled.length === 0) return { generationId, applied: false }
    await refund(
      trx,
      userId,
      gen,
      cancelled.map((i) => i.id),
      effects,
    )
    const updated = await repo.countCancelled(
      trx,
      generationId,
      cancelled.length,
      cancelled.length * gen.price_per_item,
    )
    for (const item of cancelled)
      effects.push({
        name: 'generation.item',
        data: { ...counters(updated), item: presentItem(item, deps.urls) },
      })
    await finishIfDone(trx, updated, effects)
    return { generationId, applied: true }
  }

  async function started(
    q: Transaction<DB>,
    userId: string,
    c: Extract<GenerationCommand, { kind: 'started' }>,
    effects: Effects,
  ) {
    // one statement: the generation starts if it was queued, and its counters come back either way
    const gen = await repo.markStarted(q, userId, c.generationId)
    if (!gen) return { generationId: c.generationId, applied: false }
    if (gen.just_started) effects.push({ name: 'generation.started', data: counters(gen) })
    for (const { id, key } of c.items)
      effects.push({
        name: 'generation.item',
        data: {
          ...counters(gen),
          item: {
            id,
            key,
            status: 'running',
            imageUrl: null,
            thumbnailUrl: null,
            exports: {},
            error: null,
          },
        },
      })
    return { generationId: c.generationId, applied: gen.just_started }
  }

  async function outcome(
    trx: Transaction<DB>,
    userId: string,
    c: Extract<GenerationCommand, { kind: 'outcome' }>,
    effects: Effects,
  ) {
    const r = c.result
    // fencing in the statement: only the lease holder (or the sweeper, for an
    // expired lease) ends an item, and only once
    const ended = await repo.endItem(trx, userId, c.itemId, c.owner, r)
    if (!ended) return { generationId: '', applied: false }
    const updated = await repo.countOutcome(trx, ended.generation_id, r.status)
    if (r.status === 'failed') await refund(trx, userId, updated, [ended.id], effects)
    effects.push({
      name: 'generation.item',
      data: { ...counters(updated), item: presentItem(ended, deps.urls) },
    })
    await finishIfDone(trx, updated, effects)
    return { generationId: updated.id, applied: true }
  }

  /** One refund per item, keyed by the item: replays can never refund twice. */
  async function refund(
    trx: Transaction<DB>,
    userId: string,
    gen: GenerationRow,
    itemIds: string[],
    effects: Effects,
  ) {
    const outcomes = await ledger.apply(
      trx,
      userId,
      itemIds.map((id) => ({
        kind: 'refund' as const,
        amount: gen.price_per_item,
        reason: `refund for item ${id}`,
        key: ledgerKeys.itemRefund(id),
        generationId: gen.id,
        refundOf: gen.charge_entry_id,
      })),
    )
    // one credits.changed per refund entry is in the outbox already (ledger_apply)
    if (!outcomes.every((o) => o.ok)) throw new Error('refund was not applied')
  }

  async function finishIfDone(trx: Transaction<DB>, gen: GenerationRow, effects: Effects) {
    if (gen.succeeded_items + gen.failed_items + gen.cancelled_items < gen.total_items) return
    const status = finalStatus(gen)
    const done = await repo.finishGeneration(trx, gen.id, status)
    effects.push({
      name: 'generation.finished',
      data: { ...counters(done), status, creditsRefunded: done.credits_refunded },
    })
  }

  // under the batch's signal: past the deadline, a command whose transaction committed
  // answers its result, the others a 503 with nothing of them committed (src/db/batch-scope.ts)
  return (userId, batch, context) =>
    inBatch(context?.signal, async () => {
      const out: Outcome<GenerationResult>[] = []
      for (const message of batch) {
        try {
          out.push({ ok: true, value: await run(userId, message.command, context?.epoch) })
        } catch (error) {
          // each command in its own transaction: one at fault fails alone, with its own
          // 4xx; a database that did not answer is a 503 (src/db/errors.ts)
          out.push({ ok: false, error: toCommandError(error) })
        }
      }
      return out
    })
}

/** Starting, cancelling and failing an item charge or refund; a success or a start does not. */
function movesMoney(c: GenerationCommand) {
  return (
    c.kind === 'start' ||
    c.kind === 'cancel' ||
    (c.kind === 'outcome' && c.result.status === 'failed')
  )
}

export function finalStatus(
  g: Pick<GenerationRow, 'succeeded_items' | 'failed_items' | 'cancelled_items' | 'total_items'>,
): GenerationStatus {
  if (g.succeeded_items === g.total_items) return 'succeeded'
  if (g.succeeded_items > 0) return 'partial'
  // nothing succeeded: failed only when nothing was cancelled (a cancel is the user's last word)
  return g.cancelled_items === 0 ? 'failed' : 'cancelled'
}

function counters(g: GenerationRow) {
  return {
    generationId: g.id,
    status: g.status,
    totalItems: g.total_items,
    succeededItems: g.succeeded_items,
    failedItems: g.failed_items,
    cancelledItems: g.cancelled_items,
  }
}
