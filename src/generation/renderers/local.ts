import sharp from 'sharp'
import { PermanentError } from '../../errors'
import { THUMBNAIL_WEBP, THUMBNAIL_WIDTH } from '../../media/images'
import { makeRandom, seedFrom } from '../../media/seed'
import { svgDocument } from '../../media/svg'
import { abortable } from './abortable'
import { abstractSvg } from './local-abstract'
import { COCO_KEYPOINT_COUNT, figureSvg } from './local-figure'
import { makePalette } from './palette'
import {
  DEFAULT_RENDER_SIZE,
  RetryLater,
  type Keypoint,
  type RenderInput,
  type Renderer,
} from './renderer'

export type LocalRendererDeps = {
  /** PNG zlib level 0–9; default 6. Lower is faster and larger. */
  compressionLevel?: number
}

const MIN_SIZE = 64
const MAX_SIZE = 4096

/**
 * Deterministic pictures with sharp, no network: a stick figure drawn from
 * the pose keypoints (library mode) or an abstract composition from the
 * prompt (text mode), as PNG, with its WebP thumbnail drawn from the same
 * vector picture. The pixels depend on the mode, the pose (its id
 * and keypoints) or the prompt, the variation, `size` and `transparent`, and
 * on nothing else (not the generation or item id), so a retried item renders
 * the identical bytes.
 */
export function makeLocalRenderer(deps: LocalRendererDeps = {}): Renderer {
  const compressionLevel = deps.compressionLevel ?? 6
  const inFlight = new Set<Promise<unknown>>()
  let closed = false

  return {
    name: 'local',
    async render(input, signal) {
      signal.throwIfAborted()
      if (closed) throw new RetryLater('the local renderer is closed')
      const size = checkSize(input.size)
      const body = composition(input, size)
      const image = Buffer.from(svgDocument(size, size, body))
      // the thumbnail is the same body drawn small: sharper than scaling the image down, and cheaper
      const small = Buffer.from(svgDocument(THUMBNAIL_WIDTH, THUMBNAIL_WIDTH, body, size, size))
      const work = Promise.all([
        sharp(image).png({ compressionLevel }).toBuffer(),
        sharp(small).webp(THUMBNAIL_WEBP).toBuffer(),
      ])
      inFlight.add(work)
      const settle = () => inFlight.delete(work)
      work.then(settle, settle)
      const [bytes, thumbnail] = await abortable(work, signal)
      return {
        bytes,
        contentType: 'image/png',
        width: size,
        height: size,
        thumbnail: { bytes: thumbnail, width: THUMBNAIL_WIDTH, height: THUMBNAIL_WIDTH },
      }
    },
    async close() {
      closed = true
      await Promise.allSettled([...inFlight])
    },
  }
}

function composition(input: RenderInput, size: number): string {
  const variation = checkVariation(input.variation)
  const transparent = input.transparent === true
  switch (input.mode) {
    case 'library': {
      const pose = input.pose
      if (!pose) throw invalid('a library render needs a pose')
      const keypoints = checkKeypoints(pose.keypoints)
      const random = makeRandom(seedFrom('library', pose.id, variation))
      const palette = makePalette(random, variation)
      return figureSvg(keypoints, { size, variation, random, palette, transparent })
    }
    case 'text': {
      const prompt = input.prompt?.trim()
      if (!prompt) throw invalid('a text render needs a prompt')
      const random = makeRandom(seedFrom('text', prompt.normalize('NFC'), variation))
      const palette = makePalette(random, variation)
      return abstractSvg(prompt, { size, random, palette, transparent })
    }
    default:
      throw invalid(`unknown render mode ${JSON.stringify((input as { mode: unknown }).mode)}`)
  }
}

function checkSize(size: number | undefined): number {
  const value = size ?? DEFAULT_RENDER_SIZE
  if (!Number.isInteger(value) || value < MIN_SIZE || value > MAX_SIZE)
    throw invalid(`size must be an integer from ${MIN_SIZE} to ${MAX_SIZE}`)
  return value
}

function checkVariation(variation: number): number {
  if (!Number.isInteger(variation) || variation < 0)
    throw invalid('variation must be a non-negative integer')
  return variation
}

function checkKeypoints(keypoints: unknown): Keypoint[] {
  const ok =
    Array.isArray(keypoints) &&
    keypoints.length === COCO_KEYPOINT_COUNT &&
    keypoints.every((k) => Array.isArray(k) && k.length === 3 && k.every((v) => Number.isFinite(v)))
  if (!ok) throw invalid(`a pose needs ${COCO_KEYPOINT_COUNT} keypoints of [x, y, visibility]`)
  return keypoints as Keypoint[]
}

function invalid(message: string): PermanentError {
  return new PermanentError('invalid_render_input', message)
}
