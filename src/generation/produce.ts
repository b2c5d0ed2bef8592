import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { PermanentError } from '../errors'
import {
  EXPORT_SIZES,
  applyBackground,
  exportFormat,
  overReference,
  probeImage,
  thumbnail,
} from '../media/images'
import { upsertMedia, type NewMedia } from '../media/repository'
import type { BlobStorage } from '../media/storage'
import type { Keypoint, RenderOutput, Renderer, Thumbnail } from './renderers/renderer'
import type { GenerationItemRow, GenerationRequest } from './table'

/**
 * One item, from render to stored media: render, composite the background,
 * make the thumbnail (unless the renderer drew one) and the export formats,
 * store each under a key named for (generation, item, variant) and record
 * them all in one statement. A retry writes the same keys and upserts the
 * same media rows, so an item never has two images.
 */
export type ProduceContext = {
  item: GenerationItemRow
  request: GenerationRequest
  pose?: { id: string; name: string; keypoints: Keypoint[] }
}

export type Produced = {
  imageMediaId: string
  thumbnailMediaId: string
  exports: Record<string, string>
}

type Size = { width: number; height: number }
type Blob = { key: string; bytes: Uint8Array; contentType: string; size?: Size }

const EXTENSION: Record<string, string> = {
  'image/png': 'png',
  'image/webp': 'webp',
  'image/jpeg': 'jpg',
}

export type ProducerDeps = {
  db: Kysely<DB>
  storage: BlobStorage
  renderer: Renderer
  size: number
  /** The clean bytes of the user's upload a generation names as its reference. */
  loadUpload: (userId: string, uploadId: string) => Promise<Uint8Array | undefined>
}

/** The picture of an item once its renderer and the background steps are done. */
type Picture = {
  bytes: Uint8Array
  contentType: string
  /** The renderer's own size of it (the background steps keep it). */
  size?: Size
  /** The renderer's thumbnail, while it still shows this picture. */
  drawn?: Thumbnail
}

export function makeProducer(deps: ProducerDeps) {
  /** `onRendered` is called once the CPU work is done and only storage I/O is left. */
  return async function produce(
    ctx: ProduceContext,
    signal: AbortSignal,
    onRendered: () => void = () => {},
  ): Promise<Produced> {
    const picture = await draw(deps, ctx, signal)
    const formats = ctx.request.formats ?? []
    const [thumb, ...exported] = await Promise.all([
      picture.drawn ?? scaledThumbnail(picture.bytes),
      ...formats.map((f) => exportFormat(picture.bytes, f)),
    ])
    signal.throwIfAborted()
    onRendered()
    const { item } = ctx
    const base = `generations/${item.generation_id}/${item.key}`
    const [imageMediaId, thumbnailMediaId, ...exportIds] = await store(deps, item.user_id, [
      {
        key: `${base}.${EXTENSION[picture.contentType]}`,
        bytes: picture.bytes,
        contentType: picture.contentType,
        size: picture.size,
      },
      { key: `${base}-thumb.webp`, bytes: thumb!.bytes, contentType: 'image/webp', size: thumb },
      ...formats.map((f, i) => ({
        key: `${base}-${f}.png`,
        bytes: exported[i]!,
        contentType: 'image/png',
        size: EXPORT_SIZES[f],
      })),
    ])
    const exports = Object.fromEntries(formats.map((f, i) => [f, exportIds[i]!]))
    return { imageMediaId: imageMediaId!, thumbnailMediaId: thumbnailMediaId!, exports }
  }
}

/** Renders the item, then puts it over its reference upload and its background, if any. */
async function draw(deps: ProducerDeps, ctx: ProduceContext, signal: AbortSignal) {
  const { item, request } = ctx
  const reference = request.uploadId
    ? await deps.loadUpload(item.user_id, request.uploadId)
    : undefined
  if (request.uploadId && !reference)
    throw new PermanentError('upload_missing', 'The reference upload of this generation is gone')
  const rendered = await deps.renderer.render(
    {
      generationId: item.generation_id,
      itemKey: item.key,
      mode: request.mode,
      variation: item.variation,
      pose: ctx.pose,
      prompt: request.prompt,
      size: deps.size,
      // the upload or the background goes behind the figure
      transparent: reference !== undefined || request.background !== undefined,
    },
    signal,
  )
  signal.throwIfAborted()
  const picture: Picture = {
    bytes: rendered.bytes,
    contentType: rendered.contentType,
    size: sizeOf(rendered),
    // the renderer's thumbnail shows its picture, which the background step changes (not its size)
    drawn: rendered.thumbnail,
  }
  if (reference) {
    picture.bytes = await overReference(picture.bytes, reference)
    picture.contentType = 'image/png'
    picture.drawn = undefined
  }
  if (request.background) {
    picture.bytes = await applyBackground(picture.bytes, request.background)
    picture.contentType = 'image/png'
    picture.drawn = undefined
  }
  return picture
}

/** Writes the blobs and records them, in order; a size not given is read from the image's header. */
async function store(deps: ProducerDeps, userId: string, blobs: Blob[]): Promise<string[]> {
  const rows = await Promise.all(
    blobs.map(async (b): Promise<NewMedia> => {
      const [, size] = await Promise.all([
        deps.storage.put(b.key, b.bytes, b.contentType),
        b.size ?? probeImage(b.bytes),
      ])
      return {
        userId,
        storageKey: b.key,
        contentType: b.contentType,
        bytes: b.bytes.byteLength,
        width: size.width,
        height: size.height,
      }
    }),
  )
  return upsertMedia(deps.db, rows)
}

async function scaledThumbnail(image: Uint8Array): Promise<Thumbnail> {
  const bytes = await thumbnail(image)
  const { width, height } = await probeImage(bytes)
  return { bytes, width, height }
}

function sizeOf(out: RenderOutput): Size | undefined {
  return out.width && out.height ? { width: out.width, height: out.height } : undefined
}
