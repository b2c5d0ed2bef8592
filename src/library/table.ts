import type { ColumnType, RawBuilder, Selectable } from 'kysely'
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
  /** Written only through `jsonb(keypoints)` (db/json.ts): a bound string would be stored as a JSON string on postgres.js. */
  keypoints: ColumnType<Keypoint[], RawBuilder<Keypoint[]>, RawBuilder<Keypoint[]>>
  thumbnail_url: ColumnType<string | null, string | null | undefined, string | null>
  created_at: ColumnType<Date, never, never>
  updated_at: ColumnType<Date, never, Date>
  /** Set when an admin deletes the pose: it leaves the library, generations keep it. */
  deleted_at: ColumnType<Date | null, never, Date | null>
  /** The creating request's command key (sql/0027): a retry finds its pose by it. */
  creation_key: ColumnType<string | null, string | null | undefined, never>
}

export type PoseCategoryRow = Selectable<PoseCategoryTable>
export type PoseRow = Selectable<PoseTable>
