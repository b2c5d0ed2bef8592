import type { ColumnType, JSONColumnType, Selectable } from 'kysely'
import type { Keypoint } from './keypoints'

/** How hard a pose is to hold (or to draw convincingly). */
export type Difficulty = 'easy' | 'medium' | 'hard'

export interface PoseCategoryTable {
  /** A slug such as 'standing'; also the `?category=` value. */
  id: string
  name: string
  created_at: ColumnType<Date, never, never>
}

export interface PoseTable {
  id: string
  name: string
  category_id: string
  tags: ColumnType<string[], string[] | undefined, string[]>
  difficulty: Difficulty
  /** Written as JSON text: JSON.stringify(keypoints). */
  keypoints: JSONColumnType<Keypoint[]>
  thumbnail_url: ColumnType<string | null, string | null | undefined, string | null>
  created_at: ColumnType<Date, never, never>
  updated_at: ColumnType<Date, never, Date>
}

export type PoseCategoryRow = Selectable<PoseCategoryTable>
export type PoseRow = Selectable<PoseTable>
