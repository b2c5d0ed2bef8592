import sharp from 'sharp'
import { UnsupportedMediaType, ValidationFailed } from '../errors'
import { sniffImageFormat, thumbnail, type ImageFormat } from './images'

/**
 * An uploaded file, judged by its bytes alone: the magic number says JPEG,
 * PNG or WebP and libvips' header reader agrees, or it is 415 (SVG, GIF,
 * HEIC, PDF, text… never reach a decoder). The size comes from the header,
 * so a decompression bomb (20,000 × 20,000 pixels in a few KiB) is refused
 * before a pixel is decoded; the decode itself runs under sharp's pixel
 * limit too. What is kept is re-encoded from the pixels, orientation
 * applied first: EXIF, GPS, XMP, ICC and comments are not carried over.
 */
export const UPLOAD_MIN_SIDE = 256
export const UPLOAD_MAX_SIDE = 4096
/** sharp's limitInputPixels for the decode: the largest image the side limits allow. */
const MAX_PIXELS = UPLOAD_MAX_SIDE * UPLOAD_MAX_SIDE

export type CleanUpload = {
  format: ImageFormat
  width: number
  height: number
  /** The stored image: same format, no metadata. */
  bytes: Buffer
  thumbnail: { bytes: Buffer; width: number; height: number }
}

const CONTENT_TYPE: Readonly<Record<ImageFormat, string>> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
}
export const uploadContentType = (format: ImageFormat) => CONTENT_TYPE[format]

export async function cleanUpload(input: Uint8Array): Promise<CleanUpload> {
  const format = sniffImageFormat(input)
  if (!format) throw new UnsupportedMediaType('Upload a JPEG, PNG or WebP image')
  let meta: sharp.Metadata
  try {
    // the header alone: sharp refuses one that claims more than MAX_PIXELS before any decode
    meta = await sharp(input, { limitInputPixels: MAX_PIXELS }).metadata()
  } catch (error) {
    if (error instanceof Error && /pixel limit/i.test(error.message))
      throw invalid(
        `The image exceeds the pixel limit of ${UPLOAD_MAX_SIDE} × ${UPLOAD_MAX_SIDE}: a decompression bomb or too large`,
      )
    throw invalid('The image could not be read')
  }
  // a PNG signature in front of something else is not a PNG
  if (meta.format !== format) throw new UnsupportedMediaType('Upload a JPEG, PNG or WebP image')
  const { width, height } = meta.autoOrient
  if (!inRange(width) || !inRange(height))
    throw invalid(
      `The image is ${width} × ${height} pixels; each side must be ${UPLOAD_MIN_SIDE} to ${UPLOAD_MAX_SIDE}`,
    )
  let bytes: Buffer
  try {
    const pipeline = sharp(input, { limitInputPixels: MAX_PIXELS, failOn: 'error' }).rotate()
    bytes = await encode(pipeline, format).toBuffer()
  } catch {
    throw invalid('The image could not be decoded')
  }
  const thumb = await thumbnail(bytes)
  const thumbMeta = await sharp(thumb).metadata()
  return {
    format,
    width,
    height,
    bytes,
    thumbnail: { bytes: thumb, width: thumbMeta.width, height: thumbMeta.height },
  }
}

// sharp writes no metadata unless asked (no withMetadata/keepExif/keepIccProfile)
function encode(pipeline: sharp.Sharp, format: ImageFormat): sharp.Sharp {
  switch (format) {
    case 'png':
      return pipeline.png()
    case 'jpeg':
      return pipeline.jpeg({ quality: 90 })
    case 'webp':
      return pipeline.webp({ quality: 90 })
  }
}

function inRange(side: number) {
  return Number.isInteger(side) && side >= UPLOAD_MIN_SIDE && side <= UPLOAD_MAX_SIDE
}

function invalid(message: string) {
  return new ValidationFailed([{ path: '/file', message }], message)
}
