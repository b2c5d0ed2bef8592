import { randomUUID } from 'node:crypto'
import { mkdir, open, rename, rm, unlink, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join, resolve, sep } from 'node:path'
import {
  checkContentType,
  checkKey,
  contentTypeOf,
  type BlobStorage,
  type StoredBlob,
} from './storage'

const CHUNK_BYTES = 64 * 1024

/**
 * Blobs as files under `root` (the composition root passes `<DATA_DIR>/media`).
 * A put writes a temp file next to the target, fsyncs it and renames it into
 * place: rename is atomic within a directory, so a crash or a retry
 * mid-write leaves the old blob or the new one, never half an image. Temp
 * names start with a dot, which no key can, so they are never served and
 * never collide with a blob.
 */
export function makeLocalStorage(root: string): BlobStorage {
  const base = resolve(root)
  const pathOf = (key: string) => {
    const path = join(base, ...checkKey(key).split('/'))
    // the key rules already forbid escaping; this keeps it so if they ever change
    if (!path.startsWith(base + sep)) throw new Error(`media key escapes the store: ${key}`)
    return path
  }

  return {
    async put(key, bytes, contentType) {
      const path = pathOf(key)
      checkContentType(key, contentType)
      await mkdir(dirname(path), { recursive: true })
      const temp = join(dirname(path), `.${basename(path)}.${randomUUID()}.tmp`)
      try {
        const file = await open(temp, 'wx', 0o644)
        try {
          await file.writeFile(bytes)
          await file.sync()
        } finally {
          await file.close()
        }
        await rename(temp, path)
      } catch (err) {
        await rm(temp, { force: true })
        throw err
      }
    },

    async get(key): Promise<StoredBlob | undefined> {
      const path = pathOf(key)
      let file: FileHandle
      try {
        file = await open(path, 'r')
      } catch (err) {
        if (isMissing(err)) return undefined
        throw err
      }
      // size and bytes from the same open file: a concurrent put renames a new
      // file into place, and this handle keeps reading the old one. Read whole
      // and closed here (images are a few MiB): a stream left unread by a
      // client that went away would otherwise hold the handle until GC.
      try {
        const stat = await file.stat()
        if (!stat.isFile()) return undefined
        const bytes = new Uint8Array(await file.readFile())
        return { body: bytes, contentType: contentTypeOf(key), size: bytes.byteLength }
      } finally {
        await file.close()
      }
    },

    async delete(key) {
      try {
        await unlink(pathOf(key))
      } catch (err) {
        if (!isMissing(err)) throw err
      }
    },
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === 'ENOENT' || code === 'ENOTDIR'
}
