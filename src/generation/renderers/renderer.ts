/**
 * The one renderer interface. A renderer turns one work item into image
 * bytes; the work queue decides what an error means:
 * - RetryLater: transient; retried with backoff, not before `retryAfterMs`.
 * - PermanentError (src/errors.ts): must not be retried; the item fails.
 * - anything else: transient, retried with backoff.
 */

/** One COCO keypoint, normalized to 0..1 (x right, y down); visibility 0 (absent), 1 (occluded), 2 (visible). */
export type Keypoint = [x: number, y: number, visibility: number]

export const DEFAULT_RENDER_SIZE = 1024

export type RenderInput = {
  generationId: string
  itemKey: string
  mode: 'library' | 'text'
  variation: number
  /** library mode: the pose, its 17 COCO keypoints in COCO order */
  pose?: { id: string; name: string; keypoints: Keypoint[] }
  /** text mode: the prompt, already validated at the edge */
  prompt?: string
  /** square edge in pixels; default 1024 */
  size?: number
  /**
   * Draw no backdrop, leaving the figure on transparent pixels, for a
   * generation whose background step (media/images.ts applyBackground) will
   * put one behind it. Default false: an opaque picture of its own.
   */
  transparent?: boolean
}

export type RenderOutput = {
  bytes: Uint8Array
  contentType: 'image/png' | 'image/webp'
  /** The picture's size when the renderer knows it, so nothing reads the header back. */
  width?: number
  height?: number
  /**
   * The same picture as a WebP `THUMBNAIL_WIDTH` px wide (media/images.ts),
   * from a renderer that can draw one for less than scaling its image down
   * (the local renderer draws it from the vector figure). Without it the
   * pipeline scales the image down itself.
   */
  thumbnail?: Thumbnail
}

export type Thumbnail = { bytes: Uint8Array; width: number; height: number }

export type Renderer = {
  name: string
  render(input: RenderInput, signal: AbortSignal): Promise<RenderOutput>
  /** Refuses new renders and settles those in flight. */
  close(): Promise<void>
}

/** Transient: try again later, not before `retryAfterMs` when it is given. */
export class RetryLater extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options)
    this.name = 'RetryLater'
  }
}
