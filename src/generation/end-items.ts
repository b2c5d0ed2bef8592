import { NotFound } from '../errors'
import { ledgerKeys } from '../ledger/keys'
import type { CommandScope, GenerationCommandOf, GenerationResult } from './commands'
import { finalStatus, finishedEvent, itemEvent } from './present'
import * as repo from './repository'
import type { GenerationRow } from './table'

/**
 * The commands that end items: `cancel` (the user's or the deadline's, for
 * the items still queued) and `outcome` (a render's, or the sweeper's for an
 * expired lease). A failed or cancelled item is refunded exactly once
 * (invariant 5), and the generation ends with its last item.
 */
export async function cancelGeneration(
  s: CommandScope,
  generationId: string,
): Promise<GenerationResult> {
  const { trx, userId } = s
  const gen = await repo.lockGeneration(trx, generationId, userId)
  if (!gen) throw new NotFound('Generation')
  const cancelled = await repo.cancelQueuedItems(trx, generationId)
  if (cancelled.length === 0) return { generationId, applied: false }
  await refund(
    s,
    gen,
    cancelled.map((i) => i.id),
  )
  const updated = await repo.countCancelled(
    trx,
    generationId,
    cancelled.length,
    cancelled.length * gen.price_per_item,
  )
  for (const item of cancelled) s.pending.push(itemEvent(updated, item, s.deps.urls))
  await finishIfDone(s, updated)
  return { generationId, applied: true }
}

export async function recordOutcome(
  s: CommandScope,
  c: GenerationCommandOf<'outcome'>,
): Promise<GenerationResult> {
  const r = c.result
  // fencing in the statement: only the lease holder (or the sweeper, for an
  // expired lease) ends an item, and only once
  const ended = await repo.endItem(s.trx, s.userId, c.itemId, c.owner, r)
  if (!ended) return { generationId: '', applied: false }
  const updated = await repo.countOutcome(s.trx, ended.generation_id, r.status)
  if (r.status === 'failed') await refund(s, updated, [ended.id])
  s.pending.push(itemEvent(updated, ended, s.deps.urls))
  await finishIfDone(s, updated)
  return { generationId: updated.id, applied: true }
}

/** One refund per item, keyed by the item: replays can never refund twice. */
async function refund({ trx, userId, deps }: CommandScope, gen: GenerationRow, itemIds: string[]) {
  const outcomes = await deps.ledger.apply(
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

async function finishIfDone({ trx, pending }: CommandScope, gen: GenerationRow) {
  if (gen.succeeded_items + gen.failed_items + gen.cancelled_items < gen.total_items) return
  const status = finalStatus(gen)
  const done = await repo.finishGeneration(trx, gen.id, status)
  pending.push(finishedEvent(done, status))
}
