import {
  SignJWT,
  createRemoteJWKSet,
  customFetch,
  decodeProtectedHeader,
  errors as jose,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose'
import { Unauthorized, Unavailable } from '../errors'
import type { Role } from './table'

/**
 * JWTs with pinned algorithms: HS256 under our own secret, and RS256/EdDSA
 * against an external key set when JWKS_URL is set. The token's header only
 * chooses which of those two verifiers runs; each verifier accepts only its
 * own algorithms, so `none` and HS256-signed-with-a-public-key both fail.
 *
 * A verified token only says who signed it for whom: principals.ts turns it
 * into a user record (the role claim is not trusted; the record's role is).
 */

export type VerifiedToken =
  /** Signed by this deployment: `sub` should be a user id. */
  | { kind: 'local'; subject: string; expiresAt: number }
  /** Signed by the identity provider behind JWKS_URL: (issuer, subject) names an identity. */
  | {
      kind: 'external'
      issuer: string
      subject: string
      email: string | undefined
      emailVerified: boolean
      expiresAt: number
    }

export type TokensDeps = {
  secret?: string
  jwksUrl?: string
  ttlSeconds: number
  /** The clock expiries are checked against (default Date.now; tests move it). */
  now?: () => number
}

export type Tokens = ReturnType<typeof makeTokens>

const EXTERNAL_ALGORITHMS = ['RS256', 'EdDSA']

/**
 * The provider's key set, fetched and cached by jose. When it cannot be had
 * (the provider unreachable or slow, an answer other than 200, or no key set)
 * no token of that provider can be judged either way: that is 503 with
 * Retry-After, not a 401 that would send a client to log in again. A token
 * whose key the set lacks, or that is malformed, is still 401.
 */
function keySetOf(url: URL): JWTVerifyGetKey {
  const unavailable = (cause?: unknown) =>
    new Unavailable('The identity provider’s key set is unavailable', 5, cause)
  const keySet = createRemoteJWKSet(url, {
    // only the fetch's own failures are the provider's; jose decides the rest
    [customFetch]: async (...args: Parameters<typeof fetch>) => {
      const response = await fetch(...args).catch((error: unknown) => {
        throw unavailable(error)
      })
      if (response.status !== 200) throw unavailable(`key set answered ${response.status}`)
      return response
    },
  })
  return async (...args) => {
    try {
      return await keySet(...args)
    } catch (error) {
      // JWKSInvalid: JSON that is no key set; jose's base JOSEError, from the key set alone:
      // a 200 whose body is no JSON (an HTML error page) or that broke off while read
      const notAKeySet =
        error instanceof jose.JWKSInvalid ||
        (error instanceof jose.JOSEError && error.constructor === jose.JOSEError)
      throw notAKeySet ? unavailable(error) : error
    }
  }
}

export function makeTokens(deps: TokensDeps) {
  // imported once: given raw bytes, jose imports an HMAC key on every sign and verify, which
  // was 0.7% of the server's CPU in bench:accept (every request verifies a token)
  const secret = deps.secret
    ? crypto.subtle.importKey(
        'raw',
        new TextEncoder().encode(deps.secret),
        { name: 'HMAC', hash: 'SHA-256' },
        false,
        ['sign', 'verify'],
      )
    : undefined
  const jwks = deps.jwksUrl ? keySetOf(new URL(deps.jwksUrl)) : undefined
  const now = deps.now ?? Date.now

  async function sign(userId: string, role: Role): Promise<string> {
    if (!secret) throw new Error('JWT_SECRET is not set: this instance cannot issue tokens')
    return new SignJWT({ role })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(userId)
      .setIssuedAt()
      .setExpirationTime(`${deps.ttlSeconds}s`)
      .sign(await secret)
  }

  async function verify(token: string): Promise<VerifiedToken> {
    let payload: JWTPayload
    let external = false
    try {
      const { alg } = decodeProtectedHeader(token)
      if (alg === 'HS256' && secret) {
        payload = (
          await jwtVerify(token, await secret, {
            algorithms: ['HS256'],
            requiredClaims: ['exp', 'sub'],
            currentDate: new Date(now()),
          })
        ).payload
      } else if (alg && EXTERNAL_ALGORITHMS.includes(alg) && jwks) {
        external = true
        payload = (
          await jwtVerify(token, jwks, {
            algorithms: EXTERNAL_ALGORITHMS,
            requiredClaims: ['exp', 'sub'],
            currentDate: new Date(now()),
          })
        ).payload
      } else {
        throw new Unauthorized('Token algorithm is not accepted')
      }
    } catch (error) {
      if (error instanceof Unauthorized || error instanceof Unavailable) throw error
      throw new Unauthorized('Invalid or expired token')
    }
    // jose checks that `sub` is there, not what it is: an array of one user id would pass a
    // pattern test as its string form, and then fail as no string further on (a 500)
    if (typeof payload.sub !== 'string') throw new Unauthorized('Invalid or expired token')
    const expiresAt = payload.exp! * 1000
    const subject = payload.sub
    if (!external) return { kind: 'local', subject, expiresAt }
    // kept only when it looks like an address: it is stored, never trusted for more
    const email =
      typeof payload.email === 'string' && /^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+$/u.test(payload.email)
        ? payload.email.slice(0, 254)
        : undefined
    return {
      kind: 'external',
      // a provider that sets no `iss` is named by its key set
      issuer: payload.iss ?? deps.jwksUrl!,
      subject,
      email,
      emailVerified: payload.email_verified === true,
      expiresAt,
    }
  }

  return { sign, verify }
}
