import type { ColumnType, RawBuilder, Selectable } from 'kysely'
import type { ExportFormat } from '../media/images'
import type { GenerationMode } from './model'

export const GENERATION_STATUSES = [
  'queued',
  'running',
  'succeeded',
  'partial',
  'failed',
  'cancelled',
] as const
export type GenerationStatus = (typeof GENERATION_STATUSES)[number]
export const ITEM_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const
export type ItemStatus = (typeof ITEM_STATUSES)[number]

/** What was accepted, stored as given (after normalization). */
export type GenerationRequest = {
  mode: GenerationMode
  poseIds?: string[]
  prompt?: string
  variations: number
  uploadId?: string
  background?: { mode: 'color' | 'prompt'; value: string }
  formats?: ExportFormat[]
  deadlineSeconds?: number
}

export interface GenerationTable {
  id: string
  user_id: string
  status: GenerationStatus
  mode: GenerationMode
  request: ColumnType<GenerationRequest, RawBuilder<GenerationRequest>, never>
  total_items: number
  succeeded_items: ColumnType<number, number | undefined, number>
  failed_items: ColumnType<number, number | undefined, number>
  cancelled_items: ColumnType<number, number | undefined, number>
  price_per_item: number
  credits_charged: number
  credits_refunded: ColumnType<number, number | undefined, number>
  charge_entry_id: string
  deadline_at: Date | null
  created_at: ColumnType<Date, Date | undefined, never>
  started_at: Date | null
  finished_at: Date | null
}

export interface GenerationItemTable {
  id: string
  generation_id: string
  user_id: string
  key: string
  pose_id: string | null
  variation: number
  status: ItemStatus
  attempts: ColumnType<number, number | undefined, number>
  lease_owner: string | null
  lease_expires_at: Date | null
  next_attempt_at: ColumnType<Date, Date | undefined, Date>
  error_code: string | null
  error_message: string | null
  image_media_id: string | null
  thumbnail_media_id: string | null
  export_media_ids: ColumnType<
    Partial<Record<ExportFormat, string>>,
    RawBuilder<Record<string, string>> | undefined,
    RawBuilder<Record<string, string>>
  >
  enqueued_at: ColumnType<Date, Date | undefined, Date>
  started_at: Date | null
  finished_at: Date | null
}

export type GenerationRow = Selectable<GenerationTable>
export type GenerationItemRow = Selectable<GenerationItemTable>
