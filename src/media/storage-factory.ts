import { join } from 'node:path'
import type { Config } from '../config/config'
import { makeLocalStorage } from './storage-local'
import { makeS3Storage } from './storage-s3'
import type { BlobStorage } from './storage'

/** MEDIA_STORAGE: local disk under DATA_DIR/media (default), or an S3-compatible bucket. */
export function makeMediaStorage(config: Config): BlobStorage {
  if (config.MEDIA_STORAGE === 's3')
    return makeS3Storage({
      bucket: config.S3_BUCKET!,
      endpoint: config.S3_ENDPOINT,
      region: config.S3_REGION,
      accessKeyId: config.S3_ACCESS_KEY_ID!,
      secretAccessKey: config.S3_SECRET_ACCESS_KEY!,
    })
  return makeLocalStorage(join(config.DATA_DIR, 'media'))
}
