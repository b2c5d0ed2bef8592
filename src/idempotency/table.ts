import type { ColumnType, RawBuilder } from 'kysely'

export interface IdempotencyKeyTable {
  user_id: string
  key: string
  request_hash: string
  state: 'in_flight' | 'completed'
  response_status: number | null
  response_body: ColumnType<unknown, RawBuilder<unknown> | undefined, RawBuilder<unknown>>
  created_at: ColumnType<Date, never, never>
  expires_at: Date
}
