import { RateLimited } from '../errors'
import { ledgerKeys } from '../ledger/keys'
import type { CommandScope, GenerationCommandOf, GenerationResult } from './commands'
import { queuedEvent } from './present'
import * as repo from './repository'

/**
 * `create`: the charge, the generation's row and its work items, in the
 * command's one transaction (invariant 3), after the user's limits.
 */
export async function createGeneration(
  s: CommandScope,
  c: GenerationCommandOf<'create'>,
): Promise<GenerationResult> {
  const { trx, userId } = s
  const total = c.pricePerItem * c.items.length
  const [charge] = await s.deps.ledger.apply(trx, userId, [
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
    await checkLimits(s, c.items.length)
    throw charge!.error
  }
  if (charge!.value.replayed)
    return { generationId: charge!.value.entry.generationId!, applied: false }
  await checkLimits(s, c.items.length)
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
  s.pending.push(queuedEvent(c.generationId, c.items.length, total))
  return { generationId: c.generationId, applied: true }
}

async function checkLimits({ trx, userId, deps }: CommandScope, newImages: number) {
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
