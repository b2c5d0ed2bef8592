import { BadRequest, PayloadTooLarge } from '../errors'

/**
 * Reads a body up to `limit` bytes. A declared Content-Length over the limit
 * is refused before a byte is read; a chunked body is cut off as soon as it
 * passes the limit, so an oversized body is never buffered whole.
 */
export async function readLimited(request: Request, limit: number): Promise<Uint8Array> {
  checkDeclaredLength(request, limit)
  if (!request.body) return new Uint8Array()
  const chunks: Uint8Array[] = []
  let size = 0
  const reader = request.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel()
      throw new PayloadTooLarge(limit)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks)
}

/** Refuses a declared Content-Length over `limit` before any byte is read. */
export function checkDeclaredLength(request: Request, limit: number) {
  const declared = Number(request.headers.get('content-length') ?? NaN)
  if (declared > limit) throw new PayloadTooLarge(limit)
}

/**
 * Parses every body type Elysia would read (JSON, text, urlencoded, octet-stream)
 * through readLimited, so a chunked body of any of them stops at `limit` instead
 * of being buffered whole by Elysia's default parser. Other types (multipart is
 * the uploads room's, with its own limit) return undefined: Elysia decides.
 */
export async function parseBody(
  request: Request,
  contentType: string | null | undefined,
  limit: number,
  onText: (text: string) => void,
): Promise<unknown> {
  const type = contentType?.split(';')[0]!.trim().toLowerCase()
  if (!type) return undefined
  const json = isJson(type)
  const form = type === 'application/x-www-form-urlencoded'
  const text = type.startsWith('text/')
  if (!json && !form && !text && type !== 'application/octet-stream') return undefined
  const bytes = await readLimited(request, limit)
  if (!json && !form && !text)
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  const decoded = new TextDecoder().decode(bytes)
  onText(decoded)
  if (json) return parseJson(decoded)
  return form ? Object.fromEntries(new URLSearchParams(decoded)) : decoded
}

export function isJson(contentType: string | null | undefined) {
  if (!contentType) return false
  const type = contentType.split(';')[0]!.trim().toLowerCase()
  return type === 'application/json' || type.endsWith('+json')
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    throw new BadRequest('The request body is not valid JSON', error)
  }
}
