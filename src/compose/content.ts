import type { Config } from '../config/config'
import { makePoseCache } from '../library/cache'
import { makeLibraryInvalidation } from '../library/invalidation'
import { makeLibrary } from '../library/service'
import { makeMediaUrls } from '../media/signed-urls'
import { makeMediaStorage } from '../media/storage-factory'
import { makeUploadMetrics } from '../media/upload-metrics'
import { makeUploads } from '../media/uploads'
import type { Logger } from '../obs/logger'
import type { Foundation } from './foundation'

/** The media room: blob storage, signed media URLs, uploads. */
export function composeMedia(f: Foundation, config: Config, log: Logger) {
  const storage = makeMediaStorage(config)
  // loadConfig refuses production without MEDIA_URL_SECRET and derives one elsewhere
  const urls = makeMediaUrls(config.mediaUrlSecret!, config.MEDIA_URL_TTL_SECONDS)
  const uploadMetrics = makeUploadMetrics(f.metrics)
  const uploads = makeUploads({
    db: f.database.db,
    storage,
    urls,
    log: log.child({ room: 'media' }),
    limits: { perHour: config.MAX_UPLOADS_PER_HOUR, quotaBytes: config.UPLOAD_QUOTA_BYTES },
    onStored: uploadMetrics.stored,
  })
  return { storage, urls, uploads, uploadMetrics }
}

/** The library room: the pose cache, its invalidation on every instance, the library. */
export async function composeLibrary(f: Foundation, config: Config, log: Logger) {
  const poseCache = makePoseCache({
    maxEntries: config.POSE_CACHE_ENTRIES,
    ttlMs: config.POSE_CACHE_TTL_SECONDS * 1000,
    metrics: f.metrics,
  })
  const invalidation = await makeLibraryInvalidation({
    redis: f.redis,
    keys: f.keys,
    instanceId: config.instanceId,
    clear: poseCache.clear,
    log: log.child({ room: 'library' }),
  })
  f.lifecycle.onClose('library invalidation', invalidation.close)
  const library = makeLibrary({
    db: f.database.db,
    readDb: f.readDb,
    cache: poseCache,
    invalidation,
  })
  return { poseCache, invalidation, library }
}
