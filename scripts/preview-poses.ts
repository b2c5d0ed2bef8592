import sharp from 'sharp'
import { COCO_SKELETON } from '../src/library/keypoints'
import { buildSeed } from './pose-seed/build'

/**
 * Renders the seed poses as a contact sheet, to check them by eye:
 * `bun scripts/preview-poses.ts [out.png] [category]`. Visible joints are
 * filled, hidden ones (visibility 1) hollow; the left side is blue.
 */

const CELL = 300
const COLUMNS = 6

const [out = 'pose-preview.png', only] = Bun.argv.slice(2)
const poses = buildSeed().poses.filter((p) => !only || p.category === only)
const rows = Math.ceil(poses.length / COLUMNS)
const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')

const cells = poses.map((pose, n) => {
  const ox = (n % COLUMNS) * CELL
  const oy = Math.floor(n / COLUMNS) * CELL
  const at = (i: number) => {
    const [x, y] = pose.keypoints[i]!
    return [ox + 10 + x * (CELL - 20), oy + 10 + y * (CELL - 20)] as const
  }
  const shown = (i: number) => pose.keypoints[i]![2] > 0
  const left = (i: number) => i > 0 && i % 2 === 1
  const lines = COCO_SKELETON.filter(([a, b]) => shown(a) && shown(b)).map(([a, b]) => {
    const [x1, y1] = at(a)
    const [x2, y2] = at(b)
    const colour =
      left(a) && left(b) ? '#2b6cb0' : !left(a) && !left(b) && a > 0 ? '#c53030' : '#555'
    return `<line x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}" stroke="${colour}" stroke-width="3"/>`
  })
  const dots = pose.keypoints.map(([, , v], i) => {
    if (v === 0) return ''
    const [x, y] = at(i)
    const fill = v === 2 ? '#111' : 'white'
    return `<circle cx="${x}" cy="${y}" r="3.5" fill="${fill}" stroke="#111" stroke-width="1.2"/>`
  })
  const label = `<text x="${ox + 6}" y="${oy + CELL - 6}" font-size="12" font-family="sans-serif">${escape(pose.name)}</text>`
  const frame = `<rect x="${ox}" y="${oy}" width="${CELL}" height="${CELL}" fill="none" stroke="#ddd"/>`
  return [frame, ...lines, ...dots, label].join('')
})

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${COLUMNS * CELL}" height="${rows * CELL}">
<rect width="100%" height="100%" fill="white"/>${cells.join('\n')}</svg>`
await sharp(Buffer.from(svg)).png().toFile(out)
process.stdout.write(`${poses.length} poses → ${out}\n`)
