import type { Transaction } from 'kysely'
import type { DB } from '../db/schema'
import type { EventName } from './event'

/**
 * The transactional outbox (sql/0014_event_outbox.sql): producers write
 * events in the transaction of their change; the relay (outbox-relay.ts)
 * claims, appends and marks them sent. Its statements are in
 * outbox-repository.ts.
 */
export type NewEvent = { name: EventName; data: Record<string, unknown> }

/** What a producer needs: write inside its transaction, say when it committed. */
export type Outbox = {
  write(trx: Transaction<DB>, userId: string, events: readonly NewEvent[]): Promise<void>
  /** After a commit that wrote events: the relay goes at once instead of at its next poll. */
  committed(): void
}
