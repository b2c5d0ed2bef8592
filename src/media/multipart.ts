import { PayloadTooLarge, UnsupportedMediaType, ValidationFailed } from '../errors'

/**
 * Room a multipart body needs around its file: boundaries and part headers
 * (a few hundred bytes; a long file name or extra fields need more).
 */
export const MULTIPART_OVERHEAD_BYTES = 16 * 1024

/**
 * The `file` part of an upload, as bytes. The app has read the body under the
 * route's own limit (http/body.ts: a declared Content-Length over it is a 413
 * before a byte is read, a chunked body is counted as it arrives) and parsed
 * it as multipart; a malformed body was a 400 there. The part's file name and
 * declared type are ignored: cleanUpload decides by the bytes.
 */
export async function filePart(
  request: Request,
  body: unknown,
  maxFileBytes: number,
): Promise<Uint8Array> {
  const contentType = request.headers.get('content-type') ?? ''
  if (contentType.split(';')[0]!.trim().toLowerCase() !== 'multipart/form-data')
    throw new UnsupportedMediaType('Send the image as multipart/form-data, in a field named file')
  const file = (body as { file?: unknown } | null | undefined)?.file
  if (!(file instanceof Blob))
    throw new ValidationFailed([{ path: '/file', message: 'Required: the image as a file part' }])
  if (file.size > maxFileBytes) throw new PayloadTooLarge(maxFileBytes)
  return new Uint8Array(await file.arrayBuffer())
}
