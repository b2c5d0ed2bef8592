import type { NewEvent } from '../events/outbox'
import type { MediaUrls } from '../media/signed-urls'
import type { GenerationItemRow, GenerationRow, GenerationStatus } from './table'

type Urls = Pick<MediaUrls, 'url'>

/** What of an item its presentation reads. */
export type ItemView = Pick<
  GenerationItemRow,
  | 'id'
  | 'key'
  | 'user_id'
  | 'status'
  | 'image_media_id'
  | 'thumbnail_media_id'
  | 'export_media_ids'
  | 'error_code'
  | 'error_message'
>

/**
 * An item as API.md shows it, with signed URLs for its owner: the REST
 * generation's items and the generation.item events both use this.
 */
export function presentItem(i: ItemView, urls: Urls) {
  const url = (mediaId: string | null) => (mediaId ? urls.url(mediaId, i.user_id) : null)
  return {
    id: i.id,
    key: i.key,
    status: i.status,
    imageUrl: url(i.image_media_id),
    thumbnailUrl: url(i.thumbnail_media_id),
    exports: Object.fromEntries(
      Object.entries(i.export_media_ids ?? {}).map(([format, m]) => [format, url(m)!]),
    ),
    error:
      i.error_code && i.status !== 'succeeded'
        ? { code: i.error_code, message: i.error_message ?? '' }
        : null,
  }
}

/**
 * A claimed item as its generation.item event shows it: running, nothing made
 * yet. An earlier attempt's error is not shown (the row still has it).
 */
export function claimedItem(userId: string, item: { id: string; key: string }): ItemView {
  return {
    id: item.id,
    key: item.key,
    user_id: userId,
    status: 'running',
    image_media_id: null,
    thumbnail_media_id: null,
    export_media_ids: {},
    error_code: null,
    error_message: null,
  }
}

/** A generation as API.md shows it, without items; `positions`: queue positions by id. */
export function presentSummary(g: GenerationRow, positions: Map<string, number>) {
  const iso = (d: Date | null) => (d ? d.toISOString() : null)
  return {
    id: g.id,
    status: g.status,
    mode: g.mode,
    totalItems: g.total_items,
    succeededItems: g.succeeded_items,
    failedItems: g.failed_items,
    cancelledItems: g.cancelled_items,
    creditsCharged: Number(g.credits_charged),
    creditsRefunded: Number(g.credits_refunded),
    queuePosition: positions.get(g.id) ?? null,
    createdAt: g.created_at.toISOString(),
    startedAt: iso(g.started_at),
    finishedAt: iso(g.finished_at),
  }
}

/** The counters every generation.* event carries. */
export function counters(g: GenerationRow) {
  return {
    generationId: g.id,
    status: g.status,
    totalItems: g.total_items,
    succeededItems: g.succeeded_items,
    failedItems: g.failed_items,
    cancelledItems: g.cancelled_items,
  }
}

export function finalStatus(
  g: Pick<GenerationRow, 'succeeded_items' | 'failed_items' | 'cancelled_items' | 'total_items'>,
): GenerationStatus {
  if (g.succeeded_items === g.total_items) return 'succeeded'
  if (g.succeeded_items > 0) return 'partial'
  // nothing succeeded: failed only when nothing was cancelled (a cancel is the user's last word)
  return g.cancelled_items === 0 ? 'failed' : 'cancelled'
}

export function queuedEvent(generationId: string, totalItems: number, creditsCharged: number) {
  return {
    name: 'generation.queued',
    data: { generationId, totalItems, creditsCharged },
  } satisfies NewEvent
}

export function startedEvent(g: GenerationRow) {
  return { name: 'generation.started', data: counters(g) } satisfies NewEvent
}

/** One item's change, with its generation's counters after it. */
export function itemEvent(g: GenerationRow, item: ItemView, urls: Urls) {
  return {
    name: 'generation.item',
    data: { ...counters(g), item: presentItem(item, urls) },
  } satisfies NewEvent
}

export function finishedEvent(g: GenerationRow, status: GenerationStatus) {
  return {
    name: 'generation.finished',
    data: { ...counters(g), status, creditsRefunded: g.credits_refunded },
  } satisfies NewEvent
}
