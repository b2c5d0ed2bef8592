/**
 * The shapes of API.md the page reads. The browser bundle keeps its own copy
 * of these (a few lines) rather than importing the server's TypeBox models,
 * which would pull Elysia and TypeBox into the bundle. Plain types come from
 * the server's modules as type-only imports, which the bundle never sees.
 */
import type { Keypoint } from '../../generation/renderers/renderer'

export type { Keypoint }
export type User = { id: string; email: string; role: string; balance?: number }

export type Page<T> = { items: T[]; nextCursor: string | null }

export type Pose = {
  id: string
  name: string
  category: string
  tags: string[]
  difficulty: string
  keypoints: Keypoint[]
  thumbnailUrl: string | null
}

export type Category = { id: string; name: string; poseCount: number }

export type ItemStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled'

export type GenerationStatus =
  'queued' | 'running' | 'succeeded' | 'partial' | 'failed' | 'cancelled'

export type Item = {
  id: string
  key: string
  status: ItemStatus
  imageUrl?: string | null
  thumbnailUrl?: string | null
  error: { code: string; message: string } | null
}

export type Counters = {
  status: GenerationStatus
  totalItems: number
  succeededItems: number
  failedItems: number
  cancelledItems: number
}

export type Generation = Counters & {
  id: string
  mode: 'library' | 'text'
  creditsCharged: number
  creditsRefunded: number
  queuePosition: number | null
  createdAt: string
  items?: Item[]
}

export type LedgerEntry = {
  id: string
  amount: number
  balanceAfter: number
  kind: string
  reason: string
  generationId?: string | null
  createdAt: string
}

/** A server frame on /v1/ws (API.md, WebSocket section). */
export type ServerFrame =
  | { type: 'ready'; userId: string; instance: string }
  | { type: 'event'; id: string; name: string; data: Record<string, unknown> }
  | { type: 'pong' }
  | { type: 'resync' }
  | { type: 'reconnect' }

export const FINISHED: ReadonlySet<GenerationStatus> = new Set([
  'succeeded',
  'partial',
  'failed',
  'cancelled',
])

/** POST /v1/uploads and GET /v1/uploads items. */
export type Upload = {
  id: string
  width: number
  height: number
  format: 'png' | 'jpeg' | 'webp'
  bytes: number
  imageUrl: string
  thumbnailUrl: string
  createdAt: string
}
