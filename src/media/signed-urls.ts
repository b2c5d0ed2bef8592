import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Expiring media URLs (`/v1/media/:id?exp=<unix>&sig=<hex>`), so an <img> tag
 * can show a private image without a bearer header. The signature covers the
 * media id, the owner and the expiry.
 */
export type MediaUrls = ReturnType<typeof makeMediaUrls>

export function makeMediaUrls(secret: string, ttlSeconds: number) {
  const key = createHmac('sha256', secret).update('atelier media urls').digest()
  const sign = (id: string, userId: string, exp: number) =>
    createHmac('sha256', key).update(`${id}.${userId}.${exp}`).digest('hex')

  return {
    url(id: string, userId: string, now = Date.now()) {
      // expiries rounded to the TTL, so the same image keeps one URL for a while (browser cache)
      const exp = (Math.floor(now / 1000 / ttlSeconds) + 2) * ttlSeconds
      return `/v1/media/${id}?exp=${exp}&sig=${sign(id, userId, exp)}`
    },
    verify(id: string, userId: string, exp: number, sig: string, now = Date.now()) {
      if (!Number.isInteger(exp) || exp * 1000 < now || !/^[0-9a-f]{64}$/.test(sig)) return false
      const expected = Buffer.from(sign(id, userId, exp), 'hex')
      return timingSafeEqual(expected, Buffer.from(sig, 'hex'))
    },
  }
}
