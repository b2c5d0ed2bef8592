import type { Keypoint, Visibility } from '../../src/library/keypoints'
import { camera, joints, type PoseShape, type V3 } from './skeleton'

/**
 * Camera-space joints → COCO keypoints: visibility from depth, then a
 * uniform fit into the unit square (y down) with a 10% margin.
 */

type P2 = [number, number]

// depth margins: a joint is hidden only when clearly behind what covers it
const BEHIND = 0.04
// limb thickness (radius) by segment, as joint indexes
const LIMBS: ReadonlyArray<[number, number, number]> = [
  [5, 7, 0.035],
  [7, 9, 0.03],
  [6, 8, 0.035],
  [8, 10, 0.03],
  [11, 13, 0.055],
  [13, 15, 0.04],
  [12, 14, 0.055],
  [14, 16, 0.04],
]
// a face point shows when its surface faces the camera at least this much (z of its normal)
const FACE_THRESHOLD = [-0.25, -0.15, -0.15, -0.35, -0.35]
const HEAD_RADIUS = 0.085

const cross2 = (o: P2, a: P2, b: P2) =>
  (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

/** Convex hull, counterclockwise (monotone chain). */
function hull(points: P2[]): P2[] {
  const sorted = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1])
  const half = (list: P2[]) => {
    const out: P2[] = []
    for (const p of list) {
      while (out.length >= 2 && cross2(out[out.length - 2]!, out[out.length - 1]!, p) <= 0)
        out.pop()
      out.push(p)
    }
    out.pop()
    return out
  }
  return [...half(sorted), ...half([...sorted].reverse())]
}

/** Strictly inside, at least `margin` from every edge. */
function insideHull(poly: P2[], p: P2, margin: number) {
  if (poly.length < 3) return false
  return poly.every((a, i) => {
    const b = poly[(i + 1) % poly.length]!
    return cross2(a, b, p) / Math.hypot(b[0] - a[0], b[1] - a[1]) > margin
  })
}

/** Distance from p to segment ab in the picture, and the parameter of the closest point. */
function toSegment(p: V3, a: V3, b: V3) {
  const dx = b[0] - a[0]
  const dy = b[1] - a[1]
  const len2 = dx * dx + dy * dy
  const k =
    len2 === 0 ? 0 : Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2))
  return { d: Math.hypot(p[0] - a[0] - k * dx, p[1] - a[1] - k * dy), k }
}

function visibilities(shape: PoseShape): { cam: V3[]; vis: Visibility[]; top: V3 } {
  const view = camera(shape)
  const body = joints(shape)
  const cam = body.points.map((j) => view(j.p))
  const head = view(body.head)
  const chest = view(body.chest)
  const pelvis = view([0, 0, 1])
  const torsoCorners: P2[] = []
  for (const [i, forward, depth] of [
    [5, chest, 0.08],
    [6, chest, 0.08],
    [11, pelvis, 0.07],
    [12, pelvis, 0.07],
  ] as const) {
    const c = cam[i]!
    torsoCorners.push([c[0] + forward[0] * depth, c[1] + forward[1] * depth])
    torsoCorners.push([c[0] - forward[0] * depth, c[1] - forward[1] * depth])
  }
  const torso = hull(torsoCorners)
  const torsoZ = (cam[5]![2] + cam[6]![2] + cam[11]![2] + cam[12]![2]) / 4

  const vis = cam.map((p, i): Visibility => {
    const face = body.points[i]!.face
    if (face && view(face)[2] < FACE_THRESHOLD[i]!) return 1
    const behindLimb = LIMBS.some(([a, b, r]) => {
      if (a === i || b === i) return false
      const { d, k } = toSegment(p, cam[a]!, cam[b]!)
      const z = cam[a]![2] + k * (cam[b]![2] - cam[a]![2])
      return d < r && z > p[2] + BEHIND
    })
    if (behindLimb) return 1
    if (face) return 2
    if (insideHull(torso, [p[0], p[1]], 0.01) && p[2] < torsoZ - 0.03) return 1
    const nearHead = Math.hypot(p[0] - head[0], p[1] - head[1]) < HEAD_RADIUS
    if (nearHead && p[2] < head[2] - BEHIND) return 1
    return 2
  })
  if (shape.crop === 'waist') for (const i of [13, 14, 15, 16]) vis[i] = 0
  return { cam, vis, top: view(body.headTop) }
}

const round = (v: number) => Math.round(Math.min(1, Math.max(0, v)) * 1000) / 1000

/** The pose's 17 COCO keypoints, fitted into the unit square. */
export function keypointsOf(shape: PoseShape): Keypoint[] {
  const { cam, vis, top } = visibilities(shape)
  const framed = [top, ...cam.filter((_, i) => vis[i]! > 0)]
  const xs = framed.map((p) => p[0])
  const ys = framed.map((p) => -p[1])
  const [minX, maxX, minY, maxY] = [
    Math.min(...xs),
    Math.max(...xs),
    Math.min(...ys),
    Math.max(...ys),
  ]
  const k = 0.8 / Math.max(maxX - minX, maxY - minY)
  const offX = 0.5 - ((minX + maxX) / 2) * k
  const offY = 0.5 - ((minY + maxY) / 2) * k
  return cam.map((p, i): Keypoint => {
    const v = vis[i]!
    return v === 0 ? [0, 0, 0] : [round(p[0] * k + offX), round(-p[1] * k + offY), v]
  })
}
