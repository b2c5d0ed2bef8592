import type { Random } from '../../media/seed'
import { linearGradient } from '../../media/svg'
import type { Palette } from './palette'
import type { Keypoint } from './renderer'

export const COCO_KEYPOINT_COUNT = 17

type Side = 'left' | 'right' | 'centre'

/** COCO's 19 limbs, 0-based (the dataset lists them 1-based), each with its side of the body. */
export const COCO_SKELETON: ReadonlyArray<readonly [from: number, to: number, side: Side]> = [
  [15, 13, 'left'],
  [13, 11, 'left'],
  [16, 14, 'right'],
  [14, 12, 'right'],
  [11, 12, 'centre'],
  [5, 11, 'left'],
  [6, 12, 'right'],
  [5, 6, 'centre'],
  [5, 7, 'left'],
  [6, 8, 'right'],
  [7, 9, 'left'],
  [8, 10, 'right'],
  [1, 2, 'centre'],
  [0, 1, 'centre'],
  [0, 2, 'centre'],
  [1, 3, 'left'],
  [2, 4, 'right'],
  [3, 5, 'left'],
  [4, 6, 'right'],
]

const FACE = [0, 1, 2, 3, 4]
/** Keypoints with visibility 1 (labelled but occluded) are drawn faded. */
const OCCLUDED_OPACITY = 0.45

export type FigureOptions = {
  size: number
  variation: number
  random: Random
  palette: Palette
  transparent: boolean
}

type Point = { x: number; y: number; visibility: number }

/**
 * The SVG body of a stick figure: COCO limbs as round-capped strokes, joints
 * as circles, a head circle around the face points, over a gradient backdrop
 * with a floor shadow. Keypoints with visibility 0 are not drawn, nor are
 * limbs that touch them. The variation sets stroke width (10–26 px at 1024)
 * and, through `random`, a jitter of up to ±0.6% of the size per joint.
 */
export function figureSvg(keypoints: readonly Keypoint[], options: FigureOptions): string {
  const { size, variation, random, palette } = options
  const stroke = size * (0.01 + 0.004 * (variation % 5))
  const margin = size * 0.1
  const jitter = size * 0.006
  const points: Array<Point | undefined> = keypoints.map(([x, y, visibility]) => {
    // draw the jitter for every keypoint, visible or not, so hiding one joint does not move the others
    const dx = random.between(-jitter, jitter)
    const dy = random.between(-jitter, jitter)
    if (visibility <= 0) return undefined
    return {
      x: margin + clamp01(x) * (size - 2 * margin) + dx,
      y: margin + clamp01(y) * (size - 2 * margin) + dy,
      visibility,
    }
  })
  const visible = points.filter((p): p is Point => p !== undefined)
  const parts: string[] = []
  if (!options.transparent) parts.push(backdrop(visible, options, stroke))
  for (const [from, to, side] of COCO_SKELETON) {
    const a = points[from]
    const b = points[to]
    if (!a || !b) continue
    const opacity = a.visibility >= 2 && b.visibility >= 2 ? 1 : OCCLUDED_OPACITY
    parts.push(
      `<line x1="${n(a.x)}" y1="${n(a.y)}" x2="${n(b.x)}" y2="${n(b.y)}" stroke="${palette[side]}" ` +
        `stroke-width="${n(stroke)}" stroke-linecap="round" opacity="${opacity}"/>`,
    )
  }
  parts.push(head(points, size, stroke, palette))
  points.forEach((p, i) => {
    if (!p) return
    const side: Side = i === 0 ? 'centre' : i % 2 === 1 ? 'left' : 'right'
    const opacity = p.visibility >= 2 ? 1 : OCCLUDED_OPACITY
    parts.push(
      `<circle cx="${n(p.x)}" cy="${n(p.y)}" r="${n(stroke * 0.75)}" fill="${palette.joint}" ` +
        `stroke="${palette[side]}" stroke-width="${n(stroke * 0.35)}" opacity="${opacity}"/>`,
    )
  })
  return parts.join('')
}

function backdrop(visible: Point[], options: FigureOptions, stroke: number): string {
  const { size, random, palette } = options
  const angle = 90 + random.between(-30, 30)
  const parts = [
    `<defs>${linearGradient('bg', angle, palette.backdrop)}</defs>`,
    `<rect width="100%" height="100%" fill="url(#bg)"/>`,
  ]
  for (const colour of palette.accents.slice(0, 3)) {
    const r = size * random.between(0.08, 0.22)
    parts.push(
      `<circle cx="${n(size * random.next())}" cy="${n(size * random.next())}" r="${n(r)}" ` +
        `fill="${colour}" opacity="0.12"/>`,
    )
  }
  if (visible.length > 0) {
    const cx = visible.reduce((sum, p) => sum + p.x, 0) / visible.length
    const floor = Math.max(...visible.map((p) => p.y)) + stroke
    parts.push(
      `<ellipse cx="${n(cx)}" cy="${n(Math.min(floor, size - stroke))}" rx="${n(size * 0.2)}" ` +
        `ry="${n(size * 0.025)}" fill="${palette.shadow}" opacity="0.22"/>`,
    )
  }
  return parts.join('')
}

function head(points: Array<Point | undefined>, size: number, stroke: number, palette: Palette) {
  const face = FACE.map((i) => points[i]).filter((p): p is Point => p !== undefined)
  if (face.length === 0) return ''
  const cx = face.reduce((sum, p) => sum + p.x, 0) / face.length
  const cy = face.reduce((sum, p) => sum + p.y, 0) / face.length
  const spread = Math.max(...face.map((p) => Math.hypot(p.x - cx, p.y - cy)))
  const r = Math.max(size * 0.035, spread * 1.3)
  return (
    `<circle cx="${n(cx)}" cy="${n(cy)}" r="${n(r)}" fill="none" stroke="${palette.centre}" ` +
    `stroke-width="${n(stroke * 0.8)}"/>`
  )
}

function clamp01(value: number): number {
  return Math.min(1, Math.max(0, value))
}

/** Two decimals: enough for pixels, and a stable string for identical output. */
function n(value: number): string {
  return value.toFixed(2)
}
