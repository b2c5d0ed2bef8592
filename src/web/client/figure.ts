import { svg } from './dom'
import type { Keypoint } from './types'

/**
 * A pose's stick figure as inline SVG, drawn from its 17 COCO keypoints
 * (x, y in 0..1, visibility 0 = not labeled, 1 = hidden, 2 = visible).
 * Poses have no thumbnail image yet, so this is their thumbnail.
 */
declare const __COCO_SKELETON__: ReadonlyArray<readonly [number, number]>

// injected at bundle time from src/library/keypoints.ts (see src/web/bundle.ts)
const SKELETON = __COCO_SKELETON__
const SIZE = 100
const HEAD = 0
const HEAD_R = 4

export function stickFigure(keypoints: Keypoint[], label: string): SVGElement {
  const at = (i: number) => {
    const k = keypoints[i]
    return k && k[2] > 0 ? { x: k[0] * SIZE, y: k[1] * SIZE, hidden: k[2] === 1 } : undefined
  }
  const figure = svg('svg', {
    viewBox: frame(keypoints),
    class: 'figure',
    role: 'img',
    'aria-label': label,
    focusable: 'false',
  })
  for (const [a, b] of SKELETON) {
    const p = at(a)
    const q = at(b)
    if (!p || !q) continue
    figure.append(
      svg('line', {
        x1: round(p.x),
        y1: round(p.y),
        x2: round(q.x),
        y2: round(q.y),
        class: p.hidden || q.hidden ? 'limb hidden' : 'limb',
      }),
    )
  }
  const head = at(HEAD)
  if (head)
    figure.append(svg('circle', { cx: round(head.x), cy: round(head.y), r: HEAD_R, class: 'head' }))
  return figure
}

/** A square viewBox around the labeled points, so a crouching figure fills its card too. */
function frame(keypoints: Keypoint[]): string {
  const xs: number[] = []
  const ys: number[] = []
  for (const [x, y, v] of keypoints) if (v > 0) (xs.push(x * SIZE), ys.push(y * SIZE))
  if (xs.length < 2) return `0 0 ${SIZE} ${SIZE}`
  const [minX, maxX, minY, maxY] = [
    Math.min(...xs),
    Math.max(...xs),
    Math.min(...ys),
    Math.max(...ys),
  ]
  const side = Math.max(maxX - minX, maxY - minY, SIZE / 4) + 2 * (HEAD_R + 4)
  const left = (minX + maxX - side) / 2
  const top = (minY + maxY - side) / 2
  return [left, top, side, side].map(round).join(' ')
}

const round = (n: number) => Math.round(n * 10) / 10
