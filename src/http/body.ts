import { BadRequest, PayloadTooLarge, UnsupportedMediaType } from '../errors'

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
/**
 * The API takes JSON (API.md: "JSON in"). A JSON body is read up to `limit`
 * and parsed (malformed → 400); multipart is left to the upload routes; any
 * other declared type is refused with 415 before a byte of it is read.
 */
export async function parseBody(
  request: Request,
  contentType: string | null | undefined,
  limit: number,
  onText: (text: string) => void,
): Promise<unknown> {
  const type = contentType?.split(';')[0]!.trim().toLowerCase()
  if (!type || type === 'multipart/form-data') return undefined
  if (!isJson(type)) throw new UnsupportedMediaType('Send the body as application/json')
  const decoded = new TextDecoder().decode(await readLimited(request, limit))
  onText(decoded)
  return parseJson(decoded)
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
