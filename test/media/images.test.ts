import { afterAll, describe, expect, it } from 'bun:test'
import sharp from 'sharp'
import { makeLocalRenderer } from '../../src/generation/renderers/local'
import {
  applyBackground,
  exportFormat,
  probeImage,
  thumbnail,
  verifyImage,
  type ExportFormat,
} from '../../src/media/images'
import { libraryInput, never, sampleImage } from '../generation/fixtures'
import { permanentCode } from '../support/errors'

const renderer = makeLocalRenderer()
afterAll(() => renderer.close())
const opaque = (await renderer.render(libraryInput(), never())).bytes
const clear = (await renderer.render(libraryInput({ transparent: true }), never())).bytes

async function pixel(bytes: Uint8Array, x: number, y: number) {
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true })
  const at = (y * info.width + x) * info.channels
  return [...data.subarray(at, at + info.channels)]
}

describe('export formats', () => {
  const sizes: Array<[ExportFormat, number, number]> = [
    ['square', 1080, 1080],
    ['portrait', 1080, 1350],
    ['story', 1080, 1920],
  ]
  for (const [format, width, height] of sizes)
    it(`makes ${format} exactly ${width}×${height} PNG, from square and wide sources`, async () => {
      const wide = await sampleImage('png', 800, 400)
      for (const source of [opaque, wide]) {
        const out = await exportFormat(source, format)
        expect(await sharp(out).metadata()).toMatchObject({ format: 'png', width, height })
      }
    })

  it('pads with the picture itself, so an opaque picture stays opaque', async () => {
    const out = await exportFormat(opaque, 'story')
    expect((await sharp(out).stats()).isOpaque).toBe(true)
  })
})

describe('thumbnail', () => {
  it('is WebP, 320 px wide, height by aspect ratio', async () => {
    expect(await sharp(await thumbnail(opaque)).metadata()).toMatchObject({
      format: 'webp',
      width: 320,
      height: 320,
    })
    const wide = await thumbnail(await sampleImage('png', 800, 400))
    expect(await sharp(wide).metadata()).toMatchObject({ format: 'webp', width: 320, height: 160 })
  })
})

describe('backgrounds', () => {
  it('flattens a transparent render onto a colour', async () => {
    const out = await applyBackground(clear, { mode: 'color', value: '#FF0000' })
    expect(await pixel(out, 0, 0)).toEqual([255, 0, 0])
    const short = await applyBackground(clear, { mode: 'color', value: '#abc' })
    expect(await pixel(short, 5, 5)).toEqual([0xaa, 0xbb, 0xcc])
    expect(await sharp(short).metadata()).toMatchObject({ format: 'png', width: 1024 })
  })

  it('refuses anything but #rgb or #rrggbb', async () => {
    const bad = ['red', '#12', '#12345', '#gggggg', 'rgb(0,0,0)', '#aabbccdd', ' #abc', 'abc', '']
    for (const value of bad)
      expect(await permanentCode(applyBackground(clear, { mode: 'color', value }))).toBe(
        'invalid_background',
      )
  })

  it('puts a gradient seeded by the prompt behind the figure', async () => {
    const a1 = await applyBackground(clear, { mode: 'prompt', value: 'sunset over  the sea' })
    const a2 = await applyBackground(clear, { mode: 'prompt', value: ' sunset over the sea' })
    const b = await applyBackground(clear, { mode: 'prompt', value: 'a forest in fog' })
    expect(Buffer.compare(a1, a2)).toBe(0)
    expect(await pixel(a1, 0, 0)).not.toEqual(await pixel(b, 0, 0))
    expect((await sharp(a1).stats()).isOpaque).toBe(true)
    expect(await sharp(a1).metadata()).toMatchObject({ width: 1024, height: 1024 })
    expect(await permanentCode(applyBackground(clear, { mode: 'prompt', value: '  ' }))).toBe(
      'invalid_background',
    )
  })
})

describe('probe and verify', () => {
  it('reads format and size of PNG, JPEG and WebP from their bytes', async () => {
    for (const format of ['png', 'jpeg', 'webp'] as const)
      expect(await probeImage(await sampleImage(format, 300, 200))).toEqual({
        format,
        width: 300,
        height: 200,
      })
  })

  it('reports the size as displayed, after EXIF orientation', async () => {
    const rotated = await sharp({
      create: { width: 100, height: 50, channels: 3, background: '#000' },
    })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer()
    expect(await probeImage(rotated)).toEqual({ format: 'jpeg', width: 50, height: 100 })
  })

  it('refuses other formats before any decoder sees them, and corrupt images', async () => {
    const svg = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg" width="9"/>')
    expect(await permanentCode(probeImage(svg))).toBe('unsupported_image')
    expect(
      await permanentCode(probeImage(await sampleImage('png').then((p) => p.subarray(1)))),
    ).toBe('unsupported_image')
    const header = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3])
    expect(await permanentCode(probeImage(header))).toBe('invalid_image')
  })

  it('verifies by decoding every pixel: truncated and oversized images are refused', async () => {
    const big = await sampleImage('png', 600, 600)
    expect(await verifyImage(big)).toEqual({ format: 'png', width: 600, height: 600 })
    const truncated = big.subarray(0, Math.floor(big.length * 0.6))
    expect(await permanentCode(verifyImage(truncated))).toBe('invalid_image')
    expect(await permanentCode(verifyImage(big, { maxPixels: 100_000 }))).toBe('image_too_large')
  })
})
