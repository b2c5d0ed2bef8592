import { afterAll, describe, expect, it } from 'bun:test'
import sharp from 'sharp'
import { PermanentError } from '../../src/errors'
import { makeLocalRenderer } from '../../src/generation/renderers/local'
import { RetryLater } from '../../src/generation/renderers/renderer'
import { STANDING, libraryInput, never, textInput } from './fixtures'

const renderer = makeLocalRenderer()
afterAll(() => renderer.close())

describe('local renderer', () => {
  it('renders a library pose as a 1024×1024 PNG that sharp decodes', async () => {
    const out = await renderer.render(libraryInput(), never())
    expect(out.contentType).toBe('image/png')
    const meta = await sharp(out.bytes).metadata()
    expect(meta).toMatchObject({ format: 'png', width: 1024, height: 1024 })
    const stats = await sharp(out.bytes).stats()
    expect(stats.isOpaque).toBe(true)
  })

  it('renders a text prompt as a 1024×1024 PNG that sharp decodes', async () => {
    const out = await renderer.render(textInput(), never())
    expect(out.contentType).toBe('image/png')
    expect(await sharp(out.bytes).metadata()).toMatchObject({
      format: 'png',
      width: 1024,
      height: 1024,
    })
  })

  it('draws a 320 px WebP thumbnail of the same picture, and says both sizes', async () => {
    for (const input of [libraryInput(), textInput(), libraryInput({ size: 256 })]) {
      const out = await renderer.render(input, never())
      const size = input.size ?? 1024
      expect(out).toMatchObject({ width: size, height: size })
      expect(out.thumbnail).toMatchObject({ width: 320, height: 320 })
      expect(await sharp(out.thumbnail!.bytes).metadata()).toMatchObject({
        format: 'webp',
        width: 320,
        height: 320,
      })
      // the image scaled down and the drawn thumbnail: the same picture, pixel for pixel within a small error
      const scaled = await sharp(out.bytes).resize(320).removeAlpha().raw().toBuffer()
      const drawn = await sharp(out.thumbnail!.bytes).removeAlpha().raw().toBuffer()
      let error = 0
      for (let i = 0; i < scaled.length; i++) error += Math.abs(scaled[i]! - drawn[i]!)
      expect(error / scaled.length).toBeLessThan(4)
    }
  })

  it('renders the requested size', async () => {
    const out = await renderer.render(libraryInput({ size: 256 }), never())
    expect(await sharp(out.bytes).metadata()).toMatchObject({ width: 256, height: 256 })
  })

  it('gives identical bytes for the same input, whatever the generation and item ids', async () => {
    const a = await renderer.render(libraryInput(), never())
    const b = await renderer.render(libraryInput(), never())
    const c = await renderer.render(libraryInput({ generationId: 'other', itemKey: 'x' }), never())
    expect(Buffer.compare(a.bytes, b.bytes)).toBe(0)
    expect(Buffer.compare(a.bytes, c.bytes)).toBe(0)
    const t1 = await renderer.render(textInput(), never())
    const t2 = await renderer.render(textInput(), never())
    expect(Buffer.compare(t1.bytes, t2.bytes)).toBe(0)
  })

  it('gives different pictures for different variations, poses and prompts', async () => {
    const seen = new Set<string>()
    const inputs = [
      libraryInput({ variation: 0 }),
      libraryInput({ variation: 1 }),
      libraryInput({ variation: 2 }),
      libraryInput({
        pose: {
          id: 'pose-2',
          name: 'Mirror',
          keypoints: STANDING.map(([x, y, v]) => [1 - x, y, v]),
        },
      }),
      textInput({ variation: 0 }),
      textInput({ variation: 1 }),
      textInput({ prompt: 'a quiet harbour under snow' }),
    ]
    for (const input of inputs) {
      const out = await renderer.render(input, never())
      seen.add(new Bun.CryptoHasher('sha256').update(out.bytes).digest('hex'))
    }
    expect(seen.size).toBe(inputs.length)
  })

  it('draws no backdrop when asked for a transparent render', async () => {
    const out = await renderer.render(libraryInput({ transparent: true }), never())
    const { data, info } = await sharp(out.bytes).raw().toBuffer({ resolveWithObject: true })
    expect(info.channels).toBe(4)
    expect(data[3]).toBe(0) // the top-left corner is clear
    expect((await sharp(out.bytes).stats()).isOpaque).toBe(false)
  })

  it('draws prompts full of markup characters as text, not as SVG', async () => {
    const out = await renderer.render(
      textInput({ prompt: '<svg onload="x"> & \'quotes\' \u0007 ]]> done' }),
      never(),
    )
    expect((await sharp(out.bytes).metadata()).width).toBe(1024)
  })

  it('rejects at once when the signal is already aborted', async () => {
    const controller = new AbortController()
    controller.abort()
    await expect(renderer.render(libraryInput(), controller.signal)).rejects.toMatchObject({
      name: 'AbortError',
    })
  })

  it('rejects when the signal aborts during the render', async () => {
    const controller = new AbortController()
    const pending = renderer.render(libraryInput({ size: 4096 }), controller.signal)
    controller.abort(new Error('cancelled by the test'))
    await expect(pending).rejects.toThrow('cancelled by the test')
  })

  it('refuses inputs it can never render with a PermanentError', async () => {
    const bad = [
      libraryInput({ pose: undefined }),
      libraryInput({ pose: { id: 'p', name: 'short', keypoints: STANDING.slice(0, 16) } }),
      libraryInput({
        pose: { id: 'p', name: 'nan', keypoints: STANDING.map(() => [Number.NaN, 0, 2]) },
      }),
      libraryInput({ size: 10 }),
      libraryInput({ variation: -1 }),
      textInput({ prompt: '   ' }),
    ]
    for (const input of bad)
      await expect(renderer.render(input, never())).rejects.toBeInstanceOf(PermanentError)
  })

  it('finishes renders in flight on close and refuses new ones', async () => {
    const local = makeLocalRenderer()
    const pending = local.render(libraryInput(), never())
    await local.close()
    expect((await pending).bytes.length).toBeGreaterThan(0)
    await expect(local.render(libraryInput(), never())).rejects.toBeInstanceOf(RetryLater)
  })
})
