import type { MediaUrls } from '../media/signed-urls'
import type { GenerationItemRow } from './table'

/**
 * An item as API.md shows it, with signed URLs for its owner: the REST
 * generation's items and the generation.item events both use this.
 */
export function presentItem(i: GenerationItemRow, urls: Pick<MediaUrls, 'url'>) {
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
