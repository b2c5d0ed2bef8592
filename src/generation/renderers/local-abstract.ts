import type { Random } from '../../media/seed'
import { escapeXml, linearGradient } from '../../media/svg'
import type { Palette } from './palette'

export type AbstractOptions = {
  size: number
  random: Random
  palette: Palette
  transparent: boolean
}

const SHAPES = ['circle', 'ring', 'rect', 'triangle'] as const
const CAPTION_WORDS = 4
const CAPTION_WORD_CHARS = 18

/**
 * The SVG body of an abstract composition for a text prompt: 5–9 shapes
 * placed by `random` (seeded from the prompt and the variation) over a
 * gradient, and the first words of the prompt as a caption. Fonts come from
 * fontconfig; on a host with none the caption is simply not drawn.
 */
export function abstractSvg(prompt: string, options: AbstractOptions): string {
  const { size, random, palette } = options
  const parts: string[] = []
  if (!options.transparent)
    parts.push(
      `<defs>${linearGradient('bg', random.between(0, 360), palette.backdrop)}</defs>`,
      `<rect width="100%" height="100%" fill="url(#bg)"/>`,
    )
  const count = random.int(5, 9)
  for (let i = 0; i < count; i++) parts.push(shape(random, size, random.pick(palette.accents)))
  parts.push(caption(prompt, size, palette.centre))
  return parts.join('')
}

function shape(random: Random, size: number, colour: string): string {
  const kind = random.pick(SHAPES)
  const cx = size * random.between(0.1, 0.9)
  const cy = size * random.between(0.1, 0.8)
  const r = size * random.between(0.05, 0.22)
  const opacity = random.between(0.35, 0.85).toFixed(2)
  switch (kind) {
    case 'circle':
      return `<circle cx="${n(cx)}" cy="${n(cy)}" r="${n(r)}" fill="${colour}" opacity="${opacity}"/>`
    case 'ring':
      return (
        `<circle cx="${n(cx)}" cy="${n(cy)}" r="${n(r)}" fill="none" stroke="${colour}" ` +
        `stroke-width="${n(r * random.between(0.08, 0.25))}" opacity="${opacity}"/>`
      )
    case 'rect': {
      const w = r * random.between(1, 2.2)
      const h = r * random.between(0.6, 1.6)
      const angle = random.between(-45, 45)
      return (
        `<rect x="${n(cx - w / 2)}" y="${n(cy - h / 2)}" width="${n(w)}" height="${n(h)}" ` +
        `rx="${n(r * 0.15)}" fill="${colour}" opacity="${opacity}" ` +
        `transform="rotate(${n(angle)} ${n(cx)} ${n(cy)})"/>`
      )
    }
    case 'triangle': {
      const start = random.between(0, Math.PI * 2)
      const corners = [0, 1, 2].map((k) => {
        const a = start + (k * Math.PI * 2) / 3
        return `${n(cx + r * Math.cos(a))},${n(cy + r * Math.sin(a))}`
      })
      return `<polygon points="${corners.join(' ')}" fill="${colour}" opacity="${opacity}"/>`
    }
  }
}

function caption(prompt: string, size: number, colour: string): string {
  const words = prompt
    .normalize('NFC')
    .trim()
    .split(/\s+/)
    .slice(0, CAPTION_WORDS)
    .map((w) => [...w].slice(0, CAPTION_WORD_CHARS).join(''))
  const text = words.join(' ')
  if (!text) return ''
  // ~0.6 em per glyph in a sans face: shrink long captions to fit 86% of the width
  const fontSize = Math.min(size * 0.07, (size * 0.86) / (0.6 * [...text].length))
  return (
    `<text x="${n(size * 0.07)}" y="${n(size * 0.92)}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" ` +
    `font-weight="bold" font-size="${n(fontSize)}" fill="${colour}">${escapeXml(text)}</text>`
  )
}

function n(value: number): string {
  return value.toFixed(2)
}
