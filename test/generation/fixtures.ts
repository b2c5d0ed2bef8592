import sharp from 'sharp'
import type { Keypoint, RenderInput } from '../../src/generation/renderers/renderer'

/** A standing figure waving its right hand, the left wrist occluded, the right ankle unlabelled. */
export const STANDING: Keypoint[] = [
  [0.5, 0.12, 2],
  [0.52, 0.1, 2],
  [0.48, 0.1, 2],
  [0.55, 0.11, 2],
  [0.45, 0.11, 2],
  [0.62, 0.25, 2],
  [0.38, 0.25, 2],
  [0.7, 0.4, 2],
  [0.28, 0.15, 2],
  [0.75, 0.55, 1],
  [0.22, 0.02, 2],
  [0.58, 0.55, 2],
  [0.42, 0.55, 2],
  [0.6, 0.75, 2],
  [0.4, 0.75, 2],
  [0.6, 0.95, 2],
  [0.4, 0.95, 0],
]

export function libraryInput(overrides: Partial<RenderInput> = {}): RenderInput {
  return {
    generationId: 'gen-1',
    itemKey: 'pose-1-v0',
    mode: 'library',
    variation: 0,
    pose: { id: 'pose-1', name: 'Standing wave', keypoints: STANDING },
    ...overrides,
  }
}

export function textInput(overrides: Partial<RenderInput> = {}): RenderInput {
  return {
    generationId: 'gen-2',
    itemKey: 'text-v0',
    mode: 'text',
    variation: 0,
    prompt: 'a dancer leaping over a river at dusk',
    ...overrides,
  }
}

/** A small real image in any format sharp writes. */
export function sampleImage(format: 'png' | 'jpeg' | 'webp', width = 64, height = 64) {
  return sharp({ create: { width, height, channels: 3, background: '#3366cc' } })
    .toFormat(format)
    .toBuffer()
}

export const never = () => new AbortController().signal
