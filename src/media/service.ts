import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { NotFound } from '../errors'
import type { Principal } from '../users/principals'
import { findMedia } from './repository'
import type { MediaUrls } from './signed-urls'
import type { BlobStorage } from './storage'

export type MediaReadsDeps = {
  db: Kysely<DB>
  storage: BlobStorage
  urls: MediaUrls
}

/** How a reader proves it may read: a signed URL's `exp` and `sig`, or its bearer token. */
export type MediaProof = {
  exp?: number
  sig?: string
  /** Verifies the request's bearer token; called only when there is no valid signature. */
  bearer: () => Promise<Principal>
}

export type MediaReads = ReturnType<typeof makeMediaReads>

/**
 * Reading stored images. The rule is the media room's: only the owner reads
 * an image, by the signed, expiring URL the API hands out as imageUrl or by
 * a bearer token; anyone else gets the same 404 as for a missing id, so no
 * id's existence leaks.
 */
export function makeMediaReads(deps: MediaReadsDeps) {
  async function open(id: string, proof: MediaProof) {
    const media = await findMedia(deps.db, id)
    const signed =
      media !== undefined &&
      proof.exp !== undefined &&
      proof.sig !== undefined &&
      deps.urls.verify(media.id, media.user_id, proof.exp, proof.sig)
    // without a valid signature the token is asked for whether the id exists or not,
    // so a missing token is 401 for both and only its owner learns an image exists
    if (!signed && (await proof.bearer()).userId !== media?.user_id) throw new NotFound('Media')
    if (!media) throw new NotFound('Media')
    const blob = await deps.storage.get(media.storage_key)
    if (!blob) throw new NotFound('Media')
    return { contentType: media.content_type, blob }
  }

  return { open }
}
