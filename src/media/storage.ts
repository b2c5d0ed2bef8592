import { PermanentError } from '../errors'

/**
 * Where image bytes live: local disk (storage-local.ts) or an S3-compatible
 * bucket (storage-s3.ts), behind one interface and one key discipline.
 *
 * Keys are ours, never a user's file name: 1–512 characters of
 * [A-Za-z0-9/_.-], `/`-separated segments that are non-empty and do not
 * start with a dot (so no `.`, `..` or hidden names, no absolute paths, no
 * backslashes, no percent-encoding). The extension decides the content type,
 * and put() refuses a type that disagrees with it: on disk that needs no
 * sidecar file (one rename stays atomic), and a key means the same in either
 * backend, so media can move from disk to a bucket as-is.
 */
export type StoredBlob = {
  // Uint8Array<ArrayBuffer>, so `new Response(blob.body)` typechecks against the DOM lib
  body: ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer>
  contentType: string
  size: number
}

export type BlobStorage = {
  /** Creates or replaces the blob; readers see the old bytes or the new, never a mix. */
  put(key: string, bytes: Uint8Array, contentType: string): Promise<void>
  /** Undefined when there is no blob under the key. */
  get(key: string): Promise<StoredBlob | undefined>
  /** Idempotent: deleting a missing key is not an error. */
  delete(key: string): Promise<void>
}

export const MAX_KEY_LENGTH = 512

const KEY = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*(?:\/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$/

const TYPES: Readonly<Record<string, string>> = {
  png: 'image/png',
  webp: 'image/webp',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
}
export const DEFAULT_CONTENT_TYPE = 'application/octet-stream'

/** Returns the key, or throws PermanentError('invalid_media_key'). */
export function checkKey(key: string): string {
  if (typeof key !== 'string' || key.length > MAX_KEY_LENGTH || !KEY.test(key))
    throw new PermanentError('invalid_media_key', `Not a valid media key: ${JSON.stringify(key)}`)
  return key
}

/** The content type a key's extension stands for (`application/octet-stream` if none). */
export function contentTypeOf(key: string): string {
  const name = key.slice(key.lastIndexOf('/') + 1)
  const dot = name.lastIndexOf('.')
  if (dot < 0) return DEFAULT_CONTENT_TYPE
  return TYPES[name.slice(dot + 1).toLowerCase()] ?? DEFAULT_CONTENT_TYPE
}

/** Refuses a put whose declared type is not the one its key's extension stands for. */
export function checkContentType(key: string, contentType: string): void {
  const expected = contentTypeOf(key)
  const given = contentType.split(';')[0]!.trim().toLowerCase()
  if (given !== expected)
    throw new PermanentError(
      'media_type_mismatch',
      `The key ${JSON.stringify(key)} holds ${expected}, not ${contentType}`,
    )
}
