import { describe, expect, it } from 'bun:test'
import { deflateSync } from 'node:zlib'
import sharp from 'sharp'
import { MAX_FORM_PARTS } from '../../src/http/body'
import type { Instance } from '../../src/server'
import { useTestEnv } from '../support/env'
import { client, rawExchange, serveOnLoopback } from '../support/http'

const env = await useTestEnv()
const inst = await env.instance({ RENDER_CONCURRENCY: '0' })
const api = client(inst)

/** POST /v1/uploads with `bytes` as the `file` part, under whatever name and type the caller claims. */
async function upload(
  target: Instance,
  token: string,
  bytes: Uint8Array | string,
  name = 'picture.png',
  type = 'image/png',
  headers: Record<string, string> = {},
) {
  const form = new FormData()
  form.append('file', new File([bytes as BlobPart], name, { type }))
  const res = await target.app.handle(
    new Request('http://localhost/v1/uploads', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, ...headers },
      body: form,
    }),
  )
  const text = await res.text()
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined }
}

function solid(width: number, height: number, background = '#3366cc') {
  return sharp({ create: { width, height, channels: 3, background } })
}

async function fetchMedia(target: Instance, url: string, token?: string) {
  const res = await target.app.handle(
    new Request(`http://localhost${url}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    }),
  )
  return { status: res.status, type: res.headers.get('content-type'), bytes: await res.bytes() }
}

/** The EXIF GPS IFD pointer tag (0x8825) in either byte order. */
function hasGpsPointer(exif: Buffer | undefined) {
  return (
    !!exif && (exif.includes(Buffer.from([0x88, 0x25])) || exif.includes(Buffer.from([0x25, 0x88])))
  )
}

/**
 * A PNG whose header claims 20,000 × 20,000 pixels (400 MP, 1.2 GB decoded)
 * followed by a few compressed rows: a few hundred bytes that only a decode
 * would find out about.
 */
function pngBomb(side = 20_000) {
  const chunk = (type: string, data: Uint8Array) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
    const out = Buffer.alloc(12 + data.length)
    out.writeUInt32BE(data.length, 0)
    body.copy(out, 4)
    out.writeUInt32BE(Bun.hash.crc32(body) >>> 0, 8 + data.length)
    return out
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(side, 0)
  ihdr.writeUInt32BE(side, 4)
  ihdr.set([1, 0, 0, 0, 0], 8) // 1-bit greyscale, no interlace
  const rows = deflateSync(Buffer.alloc(64 * (Math.ceil(side / 8) + 1)))
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', rows),
    chunk('IEND', new Uint8Array()),
  ])
}

describe('POST /v1/uploads: what is stored', () => {
  it('strips EXIF and GPS from a PNG and stores it as PNG', async () => {
    const { token } = await api.register()
    const original = await solid(400, 300)
      .png()
      .withExif({
        IFD0: { Copyright: 'someone' },
        IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '51/1 30/1 0/1' },
      })
      .toBuffer()
    expect(hasGpsPointer((await sharp(original).metadata()).exif)).toBe(true)
    const res = await upload(inst, token, original)
    expect(res.status).toBe(201)
    expect(res.json).toMatchObject({ width: 400, height: 300, format: 'png' })
    const stored = await fetchMedia(inst, `/v1/media/${res.json.id}`, token)
    expect(stored.status).toBe(200)
    expect(stored.type).toBe('image/png')
    expect(stored.bytes.byteLength).toBe(res.json.bytes)
    const meta = await sharp(stored.bytes).metadata()
    expect(meta).toMatchObject({ format: 'png', width: 400, height: 300 })
    expect(meta.exif).toBeUndefined()
    expect(Buffer.from(stored.bytes).includes('eXIf')).toBe(false)
    expect(Buffer.from(stored.bytes).includes('someone')).toBe(false)
  })

  it('applies the EXIF orientation before stripping it', async () => {
    const { token } = await api.register()
    const jpeg = await solid(300, 600, '#cc3366').jpeg().withMetadata({ orientation: 6 }).toBuffer()
    const res = await upload(inst, token, jpeg, 'photo.jpg', 'image/jpeg')
    expect(res.status).toBe(201)
    expect(res.json).toMatchObject({ width: 600, height: 300, format: 'jpeg' })
    const stored = await fetchMedia(inst, res.json.imageUrl)
    const meta = await sharp(stored.bytes).metadata()
    expect(meta).toMatchObject({ format: 'jpeg', width: 600, height: 300 })
    expect(meta.orientation).toBeUndefined()
    expect(meta.exif).toBeUndefined()
  })

  it('decides the format by the bytes: a PNG named .jpg and sent as image/jpeg is a PNG', async () => {
    const { token } = await api.register()
    const png = await solid(300, 300).png().toBuffer()
    const res = await upload(inst, token, png, 'holiday.jpg', 'image/jpeg')
    expect(res.status).toBe(201)
    expect(res.json.format).toBe('png')
    const stored = await fetchMedia(inst, `/v1/media/${res.json.id}`, token)
    expect(stored.type).toBe('image/png')
    expect((await sharp(stored.bytes).metadata()).format).toBe('png')
  })

  it('accepts WebP and serves a 320 px WebP thumbnail to its owner only', async () => {
    const owner = await api.register()
    const other = await api.register()
    const res = await upload(
      inst,
      owner.token,
      await solid(640, 480).webp().toBuffer(),
      'x.bin',
      '',
    )
    expect(res.status).toBe(201)
    expect(res.json.format).toBe('webp')
    const thumb = await fetchMedia(inst, res.json.thumbnailUrl)
    expect(thumb.status).toBe(200)
    expect(await sharp(thumb.bytes).metadata()).toMatchObject({
      format: 'webp',
      width: 320,
      height: 240,
    })
    expect((await fetchMedia(inst, `/v1/media/${res.json.id}`, owner.token)).status).toBe(200)
    expect((await fetchMedia(inst, `/v1/media/${res.json.id}`, other.token)).status).toBe(404)
    const thumbId = new URL(res.json.thumbnailUrl, 'http://x').pathname.split('/').at(-1)
    expect((await fetchMedia(inst, `/v1/media/${thumbId}`, other.token)).status).toBe(404)
  })
})

describe('POST /v1/uploads: what is refused', () => {
  it('refuses SVG, GIF, HEIF, PDF and a text file named .png with 415', async () => {
    const { token } = await api.register()
    const svg =
      '<svg xmlns="http://www.w3.org/2000/svg" width="512" height="512"><rect width="512" height="512"/></svg>'
    const gif = await solid(300, 300).gif().toBuffer()
    // HEIF with AV1 (AVIF): the HEIC container, which libvips would happily decode
    const heif = await solid(300, 300).heif({ compression: 'av1' }).toBuffer()
    expect((await sharp(heif).metadata()).format).toBe('heif')
    for (const [bytes, name, type] of [
      [svg, 'drawing.svg', 'image/svg+xml'],
      [svg, 'drawing.png', 'image/png'],
      [gif, 'anim.gif', 'image/gif'],
      [gif, 'anim.png', 'image/png'],
      [heif, 'photo.heic', 'image/heic'],
      [heif, 'photo.jpg', 'image/jpeg'],
      ['just some text, not an image at all', 'notes.png', 'image/png'],
      ['%PDF-1.7\n%âãÏÓ\n1 0 obj\n<<>>\nendobj\n', 'doc.png', 'image/png'],
    ] as const) {
      const res = await upload(inst, token, bytes, name, type)
      expect(res.status, name).toBe(415)
      expect(res.json.error.code).toBe('unsupported_media_type')
    }
    const listed = await api.get('/v1/uploads', token)
    expect(listed.json.items).toEqual([])
  })

  it('refuses a 20,000 × 20,000 pixel bomb of a few KiB from its header, without decoding it', async () => {
    const { token } = await api.register()
    const bomb = pngBomb()
    expect(bomb.byteLength).toBeLessThan(8 * 1024)
    expect(await sharp(bomb, { limitInputPixels: false }).metadata()).toMatchObject({
      width: 20_000,
      height: 20_000,
    })
    const res = await upload(inst, token, bomb)
    expect(res.status).toBe(422)
    expect(res.json.error.code).toBe('validation_failed')
    // refused by sharp's pixel limit on the header; a decode would fail on the truncated rows instead
    expect(res.json.error.details).toEqual([
      { path: '/file', message: expect.stringContaining('pixel limit') },
    ])
  })

  it('refuses 100 px and 5000 px sides with 422', async () => {
    const { token } = await api.register()
    for (const [w, h] of [
      [100, 100],
      [300, 100],
      [5000, 300],
    ]) {
      const res = await upload(inst, token, await solid(w!, h!).png().toBuffer())
      expect(res.status, `${w}x${h}`).toBe(422)
      expect(res.json.error.details[0].path).toBe('/file')
    }
    expect((await upload(inst, token, await solid(256, 4096).png().toBuffer())).status).toBe(201)
  })

  it('refuses corrupt pixel data behind a valid header with 422', async () => {
    const { token } = await api.register()
    const png = await solid(400, 400).png().toBuffer()
    const res = await upload(inst, token, png.subarray(0, 80))
    expect(res.status).toBe(422)
  })

  it('answers 422 without a file part, 400 for a malformed multipart body, 415 for JSON', async () => {
    const { token } = await api.register()
    const form = new FormData()
    form.append('picture', 'not a file')
    const missing = await inst.app.handle(
      new Request('http://localhost/v1/uploads', {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: form,
      }),
    )
    expect(missing.status).toBe(422)
    expect((await missing.json()).error.details[0].path).toBe('/file')
    const asText = new FormData()
    asText.append('file', 'a string, not a file')
    const stringPart = await inst.app.handle(
      new Request('http://localhost/v1/uploads', {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: asText,
      }),
    )
    expect(stringPart.status).toBe(422)
    const malformed = await api.call('POST', '/v1/uploads', {
      token,
      body: '--nope\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
      headers: { 'content-type': 'multipart/form-data; boundary=other' },
    })
    expect(malformed.status).toBe(400)
    expect(malformed.json.error.code).toBe('bad_request')
    const json = await api.post('/v1/uploads', { file: 'iVBORw0KGgo=' }, token)
    expect(json.status).toBe(415)
    expect((await api.call('POST', '/v1/uploads', {})).status).toBe(401)
  })

  it('refuses a form of more parts than any route takes with 400, and nothing is stored', async () => {
    const { token } = await api.register()
    // 80,000 one-byte fields (4.7 MB): one getAll per name made this 17 s of one core
    const form = new FormData()
    for (let i = 0; i < 80_000; i++) form.append(`f${i}`, 'x')
    form.append(
      'file',
      new File([(await solid(300, 300).png().toBuffer()) as BlobPart], 'p.png', {
        type: 'image/png',
      }),
    )
    const res = await inst.app.handle(
      new Request('http://localhost/v1/uploads', {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: form,
      }),
    )
    const json = await res.json()
    expect([res.status, json.error.code]).toEqual([400, 'bad_request'])
    expect(json.error.message).toContain(`${MAX_FORM_PARTS} parts`)
    expect((await api.get('/v1/uploads', token)).json.items).toEqual([])
  })
})

describe('POST /v1/uploads: size', () => {
  it('answers 413 to a declared 11 MiB body before reading it, over a real server', async () => {
    const { token } = await api.register()
    const server = serveOnLoopback(inst)
    try {
      // headers only: the body is never sent, so a server that waited to read it would never answer
      const response = await rawExchange(
        server.port!,
        'POST /v1/uploads HTTP/1.1\r\nHost: localhost\r\n' +
          `Authorization: Bearer ${token}\r\n` +
          'Content-Type: multipart/form-data; boundary=x\r\n' +
          `Content-Length: ${11 * 1024 * 1024}\r\n\r\n`,
        'an answer: the server is waiting for the body',
      )
      expect(response).toStartWith('HTTP/1.1 413')
      expect(response).toContain('"payload_too_large"')
    } finally {
      server.stop(true)
    }
  })

  it('judges a declared length at /v1/uploads/ by the uploads limit, as it routes there', async () => {
    const { token } = await api.register()
    // about 2.9 MB of noise: over MAX_BODY_BYTES (1 MiB), under the uploads limit
    const noisy = await sharp({
      create: {
        width: 1000,
        height: 1000,
        channels: 3,
        background: '#808080',
        noise: { type: 'gaussian', mean: 128, sigma: 60 },
      },
    })
      .png()
      .toBuffer()
    expect(noisy.byteLength).toBeGreaterThan(2 ** 20)
    const form = new FormData()
    form.append('file', new File([noisy as BlobPart], 'noise.png', { type: 'image/png' }))
    const server = serveOnLoopback(inst)
    try {
      for (const path of ['/v1/uploads', '/v1/uploads/']) {
        const res = await fetch(`http://127.0.0.1:${server.port}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
          body: form,
        })
        expect({ path, status: res.status }).toEqual({ path, status: 201 })
      }
    } finally {
      server.stop(true)
    }
  })

  it('cuts off a body without Content-Length once it passes the limit', async () => {
    const small = await env.instance({ RENDER_CONCURRENCY: '0', MAX_UPLOAD_BYTES: '65536' })
    const { token } = await client(small).register()
    let pulled = 0
    const chunk = new Uint8Array(16 * 1024)
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= 11 * 1024 * 1024) return controller.close()
        pulled += chunk.byteLength
        controller.enqueue(chunk)
      },
    })
    const res = await small.app.handle(
      new Request('http://localhost/v1/uploads', {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'multipart/form-data; boundary=x',
        },
        body,
      }),
    )
    expect(res.status).toBe(413)
    expect(pulled).toBeLessThan(1024 * 1024)
  })

  it('answers 401 to an upload without a good token before reading its body', async () => {
    for (const authorization of [undefined, 'Bearer not-a-token', 'Basic dXNlcjpwYXNz']) {
      let pulled = 0
      const chunk = new Uint8Array(16 * 1024)
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pulled >= 5 * 1024 * 1024) return controller.close()
          pulled += chunk.byteLength
          controller.enqueue(chunk)
        },
      })
      const headers: Record<string, string> = { 'content-type': 'multipart/form-data; boundary=x' }
      if (authorization) headers.authorization = authorization
      const res = await inst.app.handle(
        new Request('http://localhost/v1/uploads', { method: 'POST', headers, body }),
      )
      expect({ authorization, status: res.status }).toEqual({ authorization, status: 401 })
      // at most what the stream had queued before anyone asked: nothing of it was read
      expect(pulled).toBeLessThan(256 * 1024)
    }
  })

  it('refuses a file part over MAX_UPLOAD_BYTES inside a body that fits the framing', async () => {
    const small = await env.instance({ RENDER_CONCURRENCY: '0', MAX_UPLOAD_BYTES: '65536' })
    const { token } = await client(small).register()
    const res = await upload(small, token, new Uint8Array(65536 + 100))
    expect(res.status).toBe(413)
  })
})

describe('per-user limits', () => {
  it('allows MAX_UPLOADS_PER_HOUR uploads an hour, then 429 with Retry-After', async () => {
    const limited = await env.instance({ RENDER_CONCURRENCY: '0', MAX_UPLOADS_PER_HOUR: '2' })
    const { token } = await client(limited).register()
    const png = await solid(300, 300).png().toBuffer()
    expect((await upload(limited, token, png)).status).toBe(201)
    expect((await upload(limited, token, png)).status).toBe(201)
    const third = await upload(limited, token, png)
    expect(third.status).toBe(429)
    expect(third.json.error.code).toBe('rate_limited')
    const retryAfter = Number(third.headers.get('retry-after'))
    expect(retryAfter).toBeGreaterThan(3500)
    expect(retryAfter).toBeLessThanOrEqual(3600)
    // another user has an hour of its own
    expect((await upload(limited, (await client(limited).register()).token, png)).status).toBe(201)
  })

  it('refuses an upload that would pass UPLOAD_QUOTA_BYTES with 429, counting stored bytes', async () => {
    const png = await solid(300, 300).png().toBuffer()
    const probe = await upload(inst, (await api.register()).token, png)
    const stored = probe.json.bytes as number
    const limited = await env.instance({
      RENDER_CONCURRENCY: '0',
      UPLOAD_QUOTA_BYTES: String(stored * 2 + 10),
    })
    const { token, user } = await client(limited).register()
    expect((await upload(limited, token, png)).status).toBe(201)
    expect((await upload(limited, token, png)).status).toBe(201)
    const over = await upload(limited, token, png)
    expect(over.status).toBe(429)
    expect(over.headers.get('retry-after')).not.toBeNull()
    const [row] = await env.sql`select count(*)::int as n from uploads where user_id = ${user.id}`
    expect(row!.n).toBe(2)
  })

  it('counts concurrent uploads against the limit one at a time', async () => {
    const limited = await env.instance({ RENDER_CONCURRENCY: '0', MAX_UPLOADS_PER_HOUR: '3' })
    const { token, user } = await client(limited).register()
    const png = await solid(300, 300).png().toBuffer()
    const results = await Promise.all(Array.from({ length: 6 }, () => upload(limited, token, png)))
    expect(results.map((r) => r.status).sort()).toEqual([201, 201, 201, 429, 429, 429])
    const [row] = await env.sql`select count(*)::int as n from uploads where user_id = ${user.id}`
    expect(row!.n).toBe(3)
  })
})

describe('GET /v1/uploads and Idempotency-Key', () => {
  it('lists the caller’s uploads newest first in keyset pages, nobody else’s', async () => {
    const { token } = await api.register()
    const other = await api.register()
    await upload(inst, other.token, await solid(300, 300).png().toBuffer())
    const ids: string[] = []
    for (let i = 0; i < 5; i++)
      ids.push(
        (
          await upload(
            inst,
            token,
            await solid(300 + i, 300)
              .png()
              .toBuffer(),
          )
        ).json.id,
      )
    const seen: string[] = []
    let cursor: string | null = null
    do {
      const page: any = await api.get(
        `/v1/uploads?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        token,
      )
      expect(page.status).toBe(200)
      expect(page.json.items.length).toBeLessThanOrEqual(2)
      seen.push(...page.json.items.map((u: any) => u.id))
      cursor = page.json.nextCursor
    } while (cursor)
    expect(seen).toEqual(ids.reverse())
    expect((await api.get('/v1/uploads?cursor=bogus', token)).status).toBe(422)
    expect((await api.get('/v1/uploads?limit=0', token)).status).toBe(422)
  })

  it('replays the first upload for the same Idempotency-Key and refuses another file under it', async () => {
    const { token, user } = await api.register()
    const png = await solid(300, 300).png().toBuffer()
    const key = { 'idempotency-key': 'upload-1' }
    const first = await upload(inst, token, png, 'a.png', 'image/png', key)
    const again = await upload(inst, token, png, 'renamed.png', 'image/png', key)
    expect(first.status).toBe(201)
    expect(again.status).toBe(201)
    expect(again.json.id).toBe(first.json.id)
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    const different = await upload(
      inst,
      token,
      await solid(301, 300).png().toBuffer(),
      'a.png',
      'image/png',
      key,
    )
    expect(different.status).toBe(409)
    expect(different.json.error.code).toBe('idempotency_conflict')
    const [row] = await env.sql`select count(*)::int as n from uploads where user_id = ${user.id}`
    expect(row!.n).toBe(1)
  })
})

describe('OpenAPI', () => {
  it('documents POST /v1/uploads as multipart with a file part, and GET /v1/uploads', async () => {
    const doc = (await api.get('/openapi/json')).json
    const post = doc.paths['/v1/uploads'].post
    expect(post.requestBody.content['multipart/form-data'].schema.required).toEqual(['file'])
    expect(Object.keys(post.responses)).toEqual(
      expect.arrayContaining(['201', '400', '413', '415', '422', '429']),
    )
    expect(doc.paths['/v1/uploads'].get.responses['200']).toBeDefined()
  })
})
