import { S3Client } from 'bun'
import { checkContentType, checkKey, contentTypeOf, type BlobStorage } from './storage'

export type S3StorageDeps = {
  bucket: string
  /** e.g. https://<account>.r2.cloudflarestorage.com or https://fly.storage.tigris.dev; default AWS */
  endpoint?: string
  region?: string
  accessKeyId: string
  secretAccessKey: string
}

/**
 * Blobs in an S3-compatible bucket through Bun's built-in client. A PUT
 * replaces an object atomically, so a retried put never leaves half an
 * image. Keys follow the same rules as on disk (storage.ts).
 */
export function makeS3Storage(deps: S3StorageDeps): BlobStorage {
  const client = new S3Client({
    bucket: deps.bucket,
    endpoint: deps.endpoint,
    region: deps.region,
    accessKeyId: deps.accessKeyId,
    secretAccessKey: deps.secretAccessKey,
  })

  return {
    async put(key, bytes, contentType) {
      checkKey(key)
      checkContentType(key, contentType)
      await client.write(key, bytes, { type: contentType })
    },

    async get(key) {
      const file = client.file(checkKey(key))
      try {
        const stat = await file.stat()
        return {
          body: file.stream(),
          contentType: stat.type || contentTypeOf(key),
          size: stat.size,
        }
      } catch (err) {
        if (isMissing(err)) return undefined
        throw err
      }
    },

    async delete(key) {
      // S3 answers 204 for a missing key too, so this is idempotent as it is
      await client.delete(checkKey(key))
    },
  }
}

function isMissing(err: unknown): boolean {
  const { code, name } = (err ?? {}) as { code?: unknown; name?: unknown }
  return name === 'S3Error' && (code === 'NoSuchKey' || code === 'NotFound')
}
