import type { CommandScope, GenerationCommandOf, GenerationResult } from './commands'
import { claimedItem, itemEvent, startedEvent } from './present'
import * as repo from './repository'

/**
 * `claimed`: a renderer pool claimed these items. Their generation starts
 * if it was still queued, and each item's event says it is running.
 */
export async function recordClaimed(
  { trx, userId, deps, pending }: CommandScope,
  c: GenerationCommandOf<'claimed'>,
): Promise<GenerationResult> {
  // one statement: the generation starts if it was queued, and its counters come back either way
  const gen = await repo.markStarted(trx, userId, c.generationId)
  if (!gen) return { generationId: c.generationId, applied: false }
  if (gen.just_started) pending.push(startedEvent(gen))
  for (const item of c.items) pending.push(itemEvent(gen, claimedItem(userId, item), deps.urls))
  return { generationId: c.generationId, applied: gen.just_started }
}
