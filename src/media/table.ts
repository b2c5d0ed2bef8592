import type { ColumnType, Selectable } from 'kysely'

export interface MediaTable {
  id: string
  user_id: string
  storage_key: string
  content_type: string
  bytes: number
  width: number | null
  height: number | null
  created_at: ColumnType<Date, never, never>
}

export type MediaRow = Selectable<MediaTable>
