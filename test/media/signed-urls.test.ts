import { describe, expect, it } from 'bun:test'
import { makeMediaUrls } from '../../src/media/signed-urls'
import { useTestEnv } from '../support/env'

const env = await useTestEnv()
const mediaId = '0190a3c4-0000-7000-8000-000000000001'
const ownerId = '0190a3c4-0000-7000-8000-000000000002'

/** The exp and sig of a URL that makeMediaUrls(secret) would hand out. */
function signedBy(secret: string) {
  const url = new URL(makeMediaUrls(secret, 3600).url(mediaId, ownerId), 'http://x')
  return { exp: Number(url.searchParams.get('exp')), sig: url.searchParams.get('sig')! }
}

describe('signed media URLs', () => {
  it('are keyed by MEDIA_URL_SECRET, not by JWT_SECRET', async () => {
    const secret = 'media-secret-that-is-long-enough-0123456789'
    const inst = await env.instance({ MEDIA_URL_SECRET: secret })
    const good = signedBy(secret)
    expect(inst.mediaUrls.verify(mediaId, ownerId, good.exp, good.sig)).toBe(true)
    const byJwt = signedBy(inst.config.jwtSecret!)
    expect(inst.mediaUrls.verify(mediaId, ownerId, byJwt.exp, byJwt.sig)).toBe(false)
  })

  it('cannot be minted from the public JWKS_URL when there is no JWT_SECRET', async () => {
    const jwksUrl = 'http://127.0.0.1:9/.well-known/jwks.json'
    const inst = await env.instance({ JWT_SECRET: undefined, JWKS_URL: jwksUrl })
    const forged = signedBy(jwksUrl)
    expect(inst.mediaUrls.verify(mediaId, ownerId, forged.exp, forged.sig)).toBe(false)
    // its own URLs still verify
    const own = new URL(inst.mediaUrls.url(mediaId, ownerId), 'http://x')
    const exp = Number(own.searchParams.get('exp'))
    expect(inst.mediaUrls.verify(mediaId, ownerId, exp, own.searchParams.get('sig')!)).toBe(true)
  })
})
