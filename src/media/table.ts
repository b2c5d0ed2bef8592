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

export interface UploadTable {
  id: string
  user_id: string
  thumbnail_media_id: string
  format: 'png' | 'jpeg' | 'webp'
  width: number
  height: number
  bytes: ColumnType<number, number, never>
  command_key: string
  created_at: ColumnType<Date, never, never>
}

export type UploadRow = Selectable<UploadTable>
