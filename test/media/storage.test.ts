import { afterAll, beforeEach, describe, expect, it } from 'bun:test'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { StoredBlob } from '../../src/media/storage'
import { makeLocalStorage } from '../../src/media/storage-local'
import { permanentCode } from '../support/errors'

const parent = mkdtempSync(join(tmpdir(), 'atelier-storage-'))
const root = join(parent, 'media')
const storage = makeLocalStorage(root)
afterAll(() => rmSync(parent, { recursive: true, force: true }))
beforeEach(() => rmSync(root, { recursive: true, force: true }))

const bytesOf = async (blob: StoredBlob) =>
  new Uint8Array(await new Response(blob.body).arrayBuffer())
const filled = (byte: number, length: number) => new Uint8Array(length).fill(byte)
const filesUnder = (dir: string) => readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort()

describe('local storage', () => {
  it('round-trips bytes with the content type and size', async () => {
    const bytes = filled(7, 200_000)
    await storage.put('generations/g1/pose-1-v0.png', bytes, 'image/png')
    const blob = await storage.get('generations/g1/pose-1-v0.png')
    expect(blob).toMatchObject({ contentType: 'image/png', size: 200_000 })
    expect(await bytesOf(blob!)).toEqual(bytes)
    await storage.put('thumbs/g1.webp', filled(1, 10), 'image/webp')
    expect((await storage.get('thumbs/g1.webp'))?.contentType).toBe('image/webp')
    expect(filesUnder(root)).toEqual([
      'generations',
      'generations/g1',
      'generations/g1/pose-1-v0.png',
      'thumbs',
      'thumbs/g1.webp',
    ])
  })

  it('answers undefined for a missing key, or one that names a directory', async () => {
    expect(await storage.get('nothing/here.png')).toBeUndefined()
    await storage.put('a/b/c.png', filled(1, 3), 'image/png')
    expect(await storage.get('a/b')).toBeUndefined()
    expect(await storage.get('a/b/c.png/d.png')).toBeUndefined()
  })

  it('refuses keys that could leave the store or hide a file, for every operation', async () => {
    const outside = join(parent, 'escaped.png')
    const keys = [
      '../escaped.png',
      'a/../../escaped.png',
      '/etc/passwd',
      `${parent}/escaped.png`,
      'a\\..\\escaped.png',
      'a/./b.png',
      'a//b.png',
      'a/',
      '.hidden.png',
      'a/.b.png.1234.tmp',
      '%2e%2e/escaped.png',
      'naïve.png',
      'a b.png',
      '',
      'x'.repeat(513),
    ]
    for (const key of keys) {
      expect(await permanentCode(storage.put(key, filled(1, 3), 'image/png'))).toBe(
        'invalid_media_key',
      )
      expect(await permanentCode(storage.get(key))).toBe('invalid_media_key')
      expect(await permanentCode(storage.delete(key))).toBe('invalid_media_key')
    }
    expect(existsSync(outside)).toBe(false)
    expect(existsSync(root)).toBe(false)
  })

  it('refuses a content type its key does not stand for', async () => {
    expect(await permanentCode(storage.put('a.png', filled(1, 3), 'image/webp'))).toBe(
      'media_type_mismatch',
    )
    expect(await permanentCode(storage.put('a.bin', filled(1, 3), 'image/png'))).toBe(
      'media_type_mismatch',
    )
    await storage.put('a.JPG', filled(1, 3), 'image/jpeg; charset=binary')
    expect((await storage.get('a.JPG'))?.contentType).toBe('image/jpeg')
  })

  it('replaces a blob whole and leaves no temp file behind', async () => {
    await storage.put('x/item.png', filled(0x41, 1000), 'image/png')
    await storage.put('x/item.png', filled(0x42, 10), 'image/png')
    const blob = await storage.get('x/item.png')
    expect(await bytesOf(blob!)).toEqual(filled(0x42, 10))
    expect(filesUnder(join(root, 'x'))).toEqual(['item.png'])
  })

  it('never shows a reader half a blob while puts overwrite it', async () => {
    const a = filled(0x41, 1024 * 1024)
    const b = filled(0x42, 300 * 1024)
    await storage.put('race.png', a, 'image/png')
    let writing = true
    const writer = (async () => {
      for (let i = 0; i < 30; i++) await storage.put('race.png', i % 2 ? a : b, 'image/png')
      writing = false
    })()
    let reads = 0
    while (writing) {
      const blob = await storage.get('race.png')
      const bytes = await bytesOf(blob!)
      expect(bytes.length).toBe(blob!.size)
      const whole = bytes.every((v) => v === bytes[0])
      expect(whole && (bytes.length === a.length || bytes.length === b.length)).toBe(true)
      reads++
    }
    await writer
    expect(reads).toBeGreaterThan(1)
    expect(filesUnder(root)).toEqual(['race.png'])
  })

  it('keeps streaming the old bytes to a reader that opened before an overwrite', async () => {
    await storage.put('open.png', filled(0x41, 500_000), 'image/png')
    const blob = await storage.get('open.png')
    await storage.put('open.png', filled(0x42, 10), 'image/png')
    expect(await bytesOf(blob!)).toEqual(filled(0x41, 500_000))
    expect(await bytesOf((await storage.get('open.png'))!)).toEqual(filled(0x42, 10))
  })

  it('cleans up its temp file when a put fails, and ignores temp files a crash left', async () => {
    await storage.put('d/e.png/f.png', filled(1, 3), 'image/png')
    // 'd/e.png' is a directory, so renaming onto it fails after the temp file was written
    await expect(storage.put('d/e.png', filled(2, 3), 'image/png')).rejects.toThrow()
    expect(filesUnder(join(root, 'd'))).toEqual(['e.png', 'e.png/f.png'])
    writeFileSync(join(root, 'd', '.g.png.crashed.tmp'), 'half')
    expect(await storage.get('d/g.png')).toBeUndefined()
  })

  it('deletes idempotently', async () => {
    await storage.put('gone.webp', filled(1, 3), 'image/webp')
    await storage.delete('gone.webp')
    await storage.delete('gone.webp')
    await storage.delete('never/was.png')
    expect(await storage.get('gone.webp')).toBeUndefined()
  })
})
