import type { Kysely } from 'kysely'
import type { Logger } from 'pino'
import type { DB } from '../db/schema'
import { RateLimited } from '../errors'
import { decodeCursor, encodeCursor, isTimeIdCursor, pageLimit } from '../db/keyset'
import type { MediaUrls } from './signed-urls'
import type { BlobStorage } from './storage'
import type { UploadRow } from './table'
import { cleanUpload, uploadContentType, type CleanUpload } from './upload-image'
import * as repo from './upload-repository'

/**
 * Uploads: validate and clean the bytes (upload-image.ts), store the image
 * and its thumbnail, then record both under the user's upload lock, where
 * the hourly count and the byte quota are checked. The limits are checked
 * once before the CPU work too, so a user over a limit costs no decode.
 * Blobs are stored before their rows, so a row never names a missing blob;
 * a refused or failed insert deletes them again.
 */
export type UploadsDeps = {
  db: Kysely<DB>
  storage: BlobStorage
  urls: Pick<MediaUrls, 'url'>
  log: Logger
  limits: { perHour: number; quotaBytes: number }
  /** Counts each upload recorded (upload-metrics.ts). */
  onStored?: (bytes: number) => void
}

export type Uploads = ReturnType<typeof makeUploads>

const EXTENSION = { png: 'png', jpeg: 'jpg', webp: 'webp' } as const

export function makeUploads(deps: UploadsDeps) {
  const { db, storage } = deps
  const present = (u: UploadRow) => presentUpload(u, deps.urls)

  async function create(userId: string, input: Uint8Array, commandKey: string) {
    const prior = await repo.findUploadByKey(db, userId, commandKey)
    if (prior) return present(prior)
    await checkLimits(db, deps.limits, userId, 0)
    const clean = await cleanUpload(input)
    const id = Bun.randomUUIDv7()
    const base = `uploads/${userId}/${id}`
    const stored: StoredUpload = {
      id,
      thumbId: Bun.randomUUIDv7(),
      imageKey: `${base}.${EXTENSION[clean.format]}`,
      thumbKey: `${base}-thumb.webp`,
      contentType: uploadContentType(clean.format),
      clean,
    }
    await Promise.all([
      storage.put(stored.imageKey, clean.bytes, stored.contentType),
      storage.put(stored.thumbKey, clean.thumbnail.bytes, 'image/webp'),
    ])
    try {
      const row = await record(deps, userId, commandKey, stored)
      if (!row.created) await removeBlobs(deps, stored.imageKey, stored.thumbKey)
      else deps.onStored?.(Number(row.row.bytes))
      return present(row.row)
    } catch (error) {
      await removeBlobs(deps, stored.imageKey, stored.thumbKey)
      throw error
    }
  }

  async function list(userId: string, query: { limit?: string; cursor?: string }) {
    const limit = pageLimit(query.limit)
    const before = decodeCursor(query.cursor, isTimeIdCursor)
    const rows = await repo.listUploads(db, userId, { limit: limit + 1, before })
    const page = rows.slice(0, limit)
    const last = page.at(-1)
    return {
      items: page.map(present),
      nextCursor:
        rows.length > limit && last ? encodeCursor([last.created_at.toISOString(), last.id]) : null,
    }
  }

  /** The upload if it is this user's (a generation's uploadId, the renderer's backdrop). */
  const findOwn = (userId: string, id: string) => repo.findOwnUpload(db, userId, id)

  /** The stored (clean) bytes of one of this user's uploads; undefined if there is none. */
  async function load(userId: string, id: string): Promise<Uint8Array | undefined> {
    const upload = await findOwn(userId, id)
    const blob = upload && (await storage.get(upload.storage_key))
    if (!blob) return undefined
    return blob.body instanceof Uint8Array ? blob.body : await new Response(blob.body).bytes()
  }

  return { create, list, findOwn, load }
}

/** Best effort: a blob left behind costs storage, not correctness (no row names it). */
async function removeBlobs(deps: UploadsDeps, ...keys: string[]) {
  await Promise.all(
    keys.map((k) =>
      deps.storage
        .delete(k)
        .catch((err) => deps.log.warn({ err, key: k }, 'upload blob not removed')),
    ),
  )
}

/** An upload whose blobs are stored and whose rows are not written yet. */
type StoredUpload = {
  id: string
  thumbId: string
  imageKey: string
  thumbKey: string
  contentType: string
  clean: CleanUpload
}

/** Its rows under the user's upload lock, where the limits are checked again; created: false for a raced twin. */
function record(deps: UploadsDeps, userId: string, commandKey: string, u: StoredUpload) {
  const { clean } = u
  return deps.db.transaction().execute(async (trx) => {
    await repo.lockUserUploads(trx, userId)
    const raced = await repo.findUploadByKey(trx, userId, commandKey)
    if (raced) return { row: raced, created: false }
    await checkLimits(trx, deps.limits, userId, clean.bytes.byteLength)
    const inserted = await repo.insertUpload(
      trx,
      {
        id: u.id,
        userId,
        storageKey: u.imageKey,
        contentType: u.contentType,
        bytes: clean.bytes.byteLength,
        width: clean.width,
        height: clean.height,
      },
      {
        id: u.thumbId,
        userId,
        storageKey: u.thumbKey,
        contentType: 'image/webp',
        bytes: clean.thumbnail.bytes.byteLength,
        width: clean.thumbnail.width,
        height: clean.thumbnail.height,
      },
      {
        id: u.id,
        user_id: userId,
        thumbnail_media_id: u.thumbId,
        format: clean.format,
        width: clean.width,
        height: clean.height,
        bytes: clean.bytes.byteLength,
        command_key: commandKey,
      },
    )
    return { row: inserted, created: true }
  })
}

async function checkLimits(
  q: Parameters<typeof repo.uploadUsage>[0],
  limits: UploadsDeps['limits'],
  userId: string,
  adding: number,
) {
  const usage = await repo.uploadUsage(q, userId)
  if (usage.lastHour >= limits.perHour) {
    const freesAt = (usage.oldestInHour?.getTime() ?? Date.now()) + 3_600_000
    throw new RateLimited(
      (freesAt - Date.now()) / 1000,
      `At most ${limits.perHour} uploads per hour`,
    )
  }
  // nothing frees quota over time (uploads are kept): an hour is a polite retry
  if (usage.bytes + adding > limits.quotaBytes)
    throw new RateLimited(3600, `The upload quota of ${limits.quotaBytes} bytes is used up`)
}

function presentUpload(u: UploadRow, urls: UploadsDeps['urls']) {
  return {
    id: u.id,
    width: u.width,
    height: u.height,
    format: u.format,
    bytes: Number(u.bytes),
    imageUrl: urls.url(u.id, u.user_id),
    thumbnailUrl: urls.url(u.thumbnail_media_id, u.user_id),
    createdAt: u.created_at.toISOString(),
  }
}
