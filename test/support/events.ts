import type { EventLog, EventName } from '../../src/events/event'
import { seqId } from '../../src/events/ids'

/**
 * Appends to an event log as the outbox relay does, with each user's next
 * seq, for tests of the log and the gateway without Postgres in the way.
 * One counter per user for the whole test file: logs sharing a Redis stream
 * (two instances) share it too.
 */
const seqs = new Map<string, number>()

export function nextSeq(userId: string) {
  const seq = (seqs.get(userId) ?? 0) + 1
  seqs.set(userId, seq)
  return seq
}

/** Resolves to the event's id once the log holds it. */
export async function appendEvent(
  log: Pick<EventLog, 'append'>,
  userId: string,
  name: EventName,
  data: unknown,
): Promise<string> {
  const seq = nextSeq(userId)
  await log.append({ userId, seq, name, json: JSON.stringify(data ?? null), at: Date.now() })
  return seqId(seq)
}
