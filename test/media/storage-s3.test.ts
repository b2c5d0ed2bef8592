import { afterAll, beforeEach, describe, expect, it } from 'bun:test'
import { PermanentError } from '../../src/errors'
import { makeS3Storage } from '../../src/media/storage-s3'

/**
 * A fake S3-compatible service on loopback: path-style PUT, HEAD, GET and
 * DELETE on /<bucket>/<key>, answering a missing key the way S3 does. It
 * proves the wiring to Bun's client, not S3 itself.
 */
const objects = new Map<string, { bytes: Uint8Array; type: string }>()
let requests = 0
const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  async fetch(req) {
    requests++
    const path = new URL(req.url).pathname
    if (req.method === 'PUT') {
      const bytes = new Uint8Array(await req.arrayBuffer())
      objects.set(path, { bytes, type: req.headers.get('content-type') ?? '' })
      return new Response(null, { status: 200 })
    }
    if (req.method === 'DELETE') {
      objects.delete(path)
      return new Response(null, { status: 204 })
    }
    const object = objects.get(path)
    if (!object)
      return new Response(req.method === 'HEAD' ? null : '<Error><Code>NoSuchKey</Code></Error>', {
        status: 404,
        headers: { 'content-type': 'application/xml' },
      })
    const headers = {
      'content-type': object.type,
      'content-length': String(object.bytes.length),
      etag: '"fake"',
      'last-modified': new Date().toUTCString(),
    }
    return new Response(req.method === 'HEAD' ? null : object.bytes.slice(), { headers })
  },
})
afterAll(() => server.stop(true))
beforeEach(() => {
  objects.clear()
  requests = 0
})

const storage = makeS3Storage({
  bucket: 'media',
  endpoint: `http://127.0.0.1:${server.port}`,
  region: 'auto',
  accessKeyId: 'test-key',
  secretAccessKey: 'test-secret',
})

describe('S3 storage', () => {
  it('round-trips bytes with their content type, and deletes idempotently', async () => {
    const bytes = new Uint8Array([1, 2, 3, 4])
    await storage.put('generations/g1/a-v0.png', bytes, 'image/png')
    expect(objects.get('/media/generations/g1/a-v0.png')?.type).toBe('image/png')
    const blob = await storage.get('generations/g1/a-v0.png')
    expect(blob).toMatchObject({ contentType: 'image/png', size: 4 })
    expect(new Uint8Array(await new Response(blob!.body).arrayBuffer())).toEqual(bytes)
    await storage.delete('generations/g1/a-v0.png')
    await storage.delete('generations/g1/a-v0.png')
    expect(await storage.get('generations/g1/a-v0.png')).toBeUndefined()
  })

  it('refuses bad keys and mismatched types before sending anything', async () => {
    for (const key of ['../x.png', '/x.png', 'a//x.png'])
      await expect(storage.get(key)).rejects.toBeInstanceOf(PermanentError)
    await expect(storage.put('x.png', new Uint8Array(1), 'image/webp')).rejects.toBeInstanceOf(
      PermanentError,
    )
    expect(requests).toBe(0)
  })
})
