import sharp from 'sharp'
import { PermanentError } from '../../errors'
import { verifyImage } from '../../media/images'
import { parseRetryAfter } from './retry-after'
import { RetryLater, type RenderOutput } from './renderer'

/**
 * Checks on what an inference provider sends back, before anything stores it.
 * Refusals of a provider's own output (wrong type, too large, undecodable)
 * are RetryLater: providers glitch, and a retry usually gets a good image;
 * RENDER_MAX_ATTEMPTS bounds how often. A 4xx refusal of our request is a
 * PermanentError: sending the same request again gets the same answer.
 */
const ACCEPTED_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp'])

/** The error for a non-2xx answer (the body is discarded by the caller). */
export function statusError(response: Response, now = Date.now()): Error {
  const status = response.status
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), now)
    return new RetryLater(`the provider answered ${status}`, retryAfterMs)
  }
  return new PermanentError('render_rejected', `the provider refused the request (${status})`)
}

export function checkContentType(response: Response): void {
  const declared = (response.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  if (!ACCEPTED_TYPES.has(declared))
    throw new RetryLater(`the provider answered with content type ${declared || '(none)'}`)
}

/**
 * The body, refusing it as soon as it passes `maxBytes`: by Content-Length
 * before reading, else while streaming, so an endless or huge body costs at
 * most maxBytes of memory.
 */
export async function readCapped(response: Response, maxBytes: number): Promise<Uint8Array> {
  const tooLarge = () => new RetryLater(`the provider answered with more than ${maxBytes} bytes`)
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => {})
    throw tooLarge()
  }
  if (!response.body) return new Uint8Array(0)
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > maxBytes) {
      await reader.cancel().catch(() => {})
      throw tooLarge()
    }
    chunks.push(value)
  }
  const bytes = new Uint8Array(total)
  let at = 0
  for (const chunk of chunks) {
    bytes.set(chunk, at)
    at += chunk.byteLength
  }
  return bytes
}

/**
 * Decodes the image fully (its real format decided by its bytes, not the
 * header) and returns it as the renderer contract's PNG or WebP: JPEG is
 * re-encoded as PNG, losslessly from the decoded pixels.
 */
export async function checkImage(bytes: Uint8Array, maxPixels: number): Promise<RenderOutput> {
  let info
  try {
    info = await verifyImage(bytes, { maxPixels })
  } catch (err) {
    if (!(err instanceof PermanentError)) throw err
    throw new RetryLater(`the provider sent an unusable image: ${err.message}`, undefined, {
      cause: err,
    })
  }
  const { format, width, height } = info
  switch (format) {
    case 'png':
      return { bytes, contentType: 'image/png', width, height }
    case 'webp':
      return { bytes, contentType: 'image/webp', width, height }
    case 'jpeg': {
      const png = await sharp(bytes).autoOrient().png().toBuffer()
      return { bytes: png, contentType: 'image/png', width, height }
    }
  }
}
