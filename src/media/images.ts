import sharp from 'sharp'
import { PermanentError, unreachable } from '../errors'
import { hslToHex, parseHexColour } from './colour'
import { makeRandom, seedFrom } from './seed'
import { linearGradient, svgDocument } from './svg'

/**
 * Image steps after rendering, all with sharp: the background, the export
 * formats, the thumbnail, and probing/verifying bytes from outside (provider
 * responses, later uploads). The format is decided by the bytes, never by a
 * name or a declared type, and only JPEG, PNG and WebP ever reach libvips from
 * outside: SVG, PDF, TIFF, HEIF… are refused before any decoder sees them.
 */
export type ImageFormat = 'png' | 'jpeg' | 'webp'
export type ImageInfo = { format: ImageFormat; width: number; height: number }
export type Background = { mode: 'color'; value: string } | { mode: 'prompt'; value: string }
/** The export sizes a generation may ask for, spelled once: the TypeBox model and the row types derive from it. */
export const EXPORT_FORMATS = ['square', 'portrait', 'story'] as const
export type ExportFormat = (typeof EXPORT_FORMATS)[number]

export const EXPORT_SIZES: Readonly<Record<ExportFormat, { width: number; height: number }>> = {
  square: { width: 1080, height: 1080 },
  portrait: { width: 1080, height: 1350 },
  story: { width: 1080, height: 1920 },
}
export const THUMBNAIL_WIDTH = 320
/** Effort 2 encodes in ~60% of the time of the default 4 for ~4% more bytes at this size. */
export const THUMBNAIL_WEBP = { quality: 80, effort: 2 } as const
/** Default decode cap for verifyImage: ~40 MP, well above any render, far below a bomb. */
export const DEFAULT_MAX_PIXELS = 40_000_000

export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  const at = (i: number) => bytes[i]
  const ascii = (from: number, text: string) =>
    [...text].every((c, i) => at(from + i) === c.charCodeAt(0))
  if (at(0) === 0x89 && ascii(1, 'PNG\r\n\u001a\n')) return 'png'
  if (at(0) === 0xff && at(1) === 0xd8 && at(2) === 0xff) return 'jpeg'
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'webp'
  return undefined
}

/**
 * Format and size from the headers alone (no full decode). Width and height
 * are as displayed, after the EXIF orientation is applied.
 */
export async function probeImage(bytes: Uint8Array): Promise<ImageInfo> {
  const format = sniffImageFormat(bytes)
  if (!format)
    throw new PermanentError('unsupported_image', 'Only JPEG, PNG and WebP images are accepted')
  try {
    const meta = await sharp(bytes).metadata()
    return { format, width: meta.autoOrient.width, height: meta.autoOrient.height }
  } catch (err) {
    throw new PermanentError('invalid_image', 'The image could not be read', { cause: err })
  }
}

/** probeImage, then a full decode: truncated or corrupt pixel data is refused too. */
export async function verifyImage(
  bytes: Uint8Array,
  options: { maxPixels?: number } = {},
): Promise<ImageInfo> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS
  const info = await probeImage(bytes)
  if (info.width * info.height > maxPixels)
    throw new PermanentError('image_too_large', `The image is larger than ${maxPixels} pixels`)
  try {
    await sharp(bytes, { limitInputPixels: maxPixels }).stats()
  } catch (err) {
    throw new PermanentError('invalid_image', 'The image could not be decoded', { cause: err })
  }
  return info
}

/**
 * `color`: flattens the image onto that colour (strictly `#rgb` or `#rrggbb`).
 * `prompt`: composites the image over a gradient seeded by the prompt text
 * (NFC, whitespace collapsed), so one prompt always gives one backdrop.
 * Either way the result is an opaque PNG of the same size; an already opaque
 * image comes back unchanged in pixels.
 */
export async function applyBackground(png: Uint8Array, background: Background): Promise<Buffer> {
  switch (background.mode) {
    case 'color': {
      const colour = parseHexColour(background.value)
      return sharp(png).flatten({ background: colour }).png().toBuffer()
    }
    case 'prompt': {
      const text = normalizeText(background.value)
      if (!text)
        throw new PermanentError('invalid_background', 'A background prompt must not be empty')
      const { width, height } = await sharp(png).metadata()
      const backdrop = Buffer.from(promptGradientSvg(text, width, height))
      return sharp(backdrop)
        .composite([{ input: asBuffer(png) }])
        .png()
        .toBuffer()
    }
    default:
      throw unreachable(background)
  }
}

/**
 * The picture over a reference image: the reference scaled to cover the
 * picture's size (centred, cropped, never stretched) behind it. The
 * picture is drawn transparent for this, so the reference shows wherever
 * the figure is not. The result is a PNG of the picture's size.
 */
export async function overReference(png: Uint8Array, reference: Uint8Array): Promise<Buffer> {
  const { width, height } = await sharp(png).metadata()
  return sharp(reference, { limitInputPixels: DEFAULT_MAX_PIXELS })
    .resize(width, height, { fit: 'cover' })
    .composite([{ input: asBuffer(png) }])
    .png()
    .toBuffer()
}

/**
 * Exactly 1080×1080, 1080×1350 or 1080×1920 PNG. The whole picture is kept
 * (contain, never cover: a square pose cropped to 9:16 would lose its hands);
 * the padding is the picture itself, scaled to cover and blurred, so it
 * continues the picture's colours instead of adding hard bars.
 */
export async function exportFormat(png: Uint8Array, format: ExportFormat): Promise<Buffer> {
  const { width, height } = EXPORT_SIZES[format]
  const clear = { r: 0, g: 0, b: 0, alpha: 0 }
  const figure = await sharp(png)
    .resize(width, height, { fit: 'contain', background: clear })
    .png()
    .toBuffer()
  const meta = await sharp(png).metadata()
  if (Math.abs(meta.width / meta.height - width / height) < 0.005) return figure
  // blurring a 1/24 scale copy and scaling it up costs ~1/576 of blurring at full size,
  // and blurs enough that the padding reads as colour, not as a ghost of the figure
  const small = await sharp(png)
    .resize(Math.ceil(width / 24), Math.ceil(height / 24), { fit: 'cover' })
    .blur(2.5)
    .modulate({ brightness: 0.85 })
    .png()
    .toBuffer()
  return sharp(small)
    .resize(width, height, { fit: 'fill' })
    .composite([{ input: figure }])
    .png()
    .toBuffer()
}

/** WebP, 320 px wide, height by aspect ratio (enlarged if the source is narrower). */
export async function thumbnail(png: Uint8Array): Promise<Buffer> {
  return sharp(png).resize({ width: THUMBNAIL_WIDTH }).webp(THUMBNAIL_WEBP).toBuffer()
}

function promptGradientSvg(text: string, width: number, height: number): string {
  const random = makeRandom(seedFrom('background', text))
  const hue = random.between(0, 360)
  const spread = random.between(30, 150)
  const colours = [
    hslToHex(hue, random.between(0.45, 0.75), random.between(0.3, 0.45)),
    hslToHex(hue + spread / 2, random.between(0.45, 0.75), random.between(0.5, 0.65)),
    hslToHex(hue + spread, random.between(0.45, 0.75), random.between(0.7, 0.85)),
  ]
  const angle = random.between(0, 360)
  return svgDocument(
    width,
    height,
    `<defs>${linearGradient('g', angle, colours)}</defs><rect width="100%" height="100%" fill="url(#g)"/>`,
  )
}

function normalizeText(value: string): string {
  return typeof value === 'string' ? value.normalize('NFC').replace(/\s+/g, ' ').trim() : ''
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
