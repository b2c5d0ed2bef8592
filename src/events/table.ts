import type { ColumnType } from 'kysely'

/** sql/0014_event_outbox.sql */
export interface EventSequenceTable {
  user_id: string
  last_seq: number
}

export interface EventOutboxTable {
  user_id: string
  seq: number
  name: string
  data: unknown
  created_at: ColumnType<Date, never, never>
  sent_at: Date | null
}
