import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { EXPORT_SIZES, applyBackground, exportFormat, probeImage, thumbnail } from '../media/images'
import { upsertMedia } from '../media/repository'
import type { BlobStorage } from '../media/storage'
import type { Keypoint, Renderer } from './renderers/renderer'
import type { GenerationItemRow, GenerationRequest } from './table'

/**
 * One item, from render to stored media: render, composite the background,
 * make the thumbnail and the export formats, store each under a key named
 * for (generation, item, variant). A retry writes the same keys and upserts
 * the same media rows, so an item never has two images.
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

const EXTENSION: Record<string, string> = {
  'image/png': 'png',
  'image/webp': 'webp',
  'image/jpeg': 'jpg',
}

export function makeProducer(deps: {
  db: Kysely<DB>
  storage: BlobStorage
  renderer: Renderer
  size: number
}) {
  /** Writes the blob and records it; `size` when known, else read from the image's header. */
  async function store(
    userId: string,
    key: string,
    bytes: Uint8Array,
    contentType: string,
    size?: { width: number; height: number },
  ) {
    const [, info] = await Promise.all([
      deps.storage.put(key, bytes, contentType),
      size ?? probeImage(bytes),
    ])
    return upsertMedia(deps.db, {
      userId,
      storageKey: key,
      contentType,
      bytes: bytes.byteLength,
      width: info.width,
      height: info.height,
    })
  }

  /** `onRendered` is called once the CPU work is done and only storage I/O is left. */
  return async function produce(
    ctx: ProduceContext,
    signal: AbortSignal,
    onRendered: () => void = () => {},
  ): Promise<Produced> {
    const { item, request } = ctx
    const rendered = await deps.renderer.render(
      {
        generationId: item.generation_id,
        itemKey: item.key,
        mode: request.mode,
        variation: item.variation,
        pose: ctx.pose,
        prompt: request.prompt,
        size: deps.size,
        transparent: request.background !== undefined,
      },
      signal,
    )
    signal.throwIfAborted()
    let main: Uint8Array = rendered.bytes
    let contentType: string = rendered.contentType
    if (request.background) {
      main = await applyBackground(main, request.background)
      contentType = 'image/png'
    }
    const base = `generations/${item.generation_id}/${item.key}`
    const [thumb, ...exported] = await Promise.all([
      thumbnail(main),
      ...(request.formats ?? []).map((f) => exportFormat(main, f)),
    ])
    signal.throwIfAborted()
    onRendered()
    const formats = request.formats ?? []
    const [imageMediaId, thumbnailMediaId, ...exportIds] = await Promise.all([
      store(item.user_id, `${base}.${EXTENSION[contentType]}`, main, contentType),
      store(item.user_id, `${base}-thumb.webp`, thumb!, 'image/webp'),
      ...formats.map((f, i) =>
        store(item.user_id, `${base}-${f}.png`, exported[i]!, 'image/png', EXPORT_SIZES[f]),
      ),
    ])
    const exports = Object.fromEntries(formats.map((f, i) => [f, exportIds[i]!]))
    return { imageMediaId: imageMediaId!, thumbnailMediaId: thumbnailMediaId!, exports }
  }
}
