import {
  SignJWT,
  createRemoteJWKSet,
  decodeProtectedHeader,
  jwtVerify,
  type JWTPayload,
} from 'jose'
import { Unauthorized } from '../errors'
import type { Role } from './table'

/**
 * JWTs with pinned algorithms: HS256 under our own secret, and RS256/EdDSA
 * against an external key set when JWKS_URL is set. The token's header only
 * chooses which of those two verifiers runs; each verifier accepts only its
 * own algorithms, so `none` and HS256-signed-with-a-public-key both fail.
 */

export type Principal = { userId: string; role: Role; expiresAt: number }

export type TokenOptions = {
  secret?: string
  jwksUrl?: string
  ttlSeconds: number
  /** The clock expiries are checked against (default Date.now; tests move it). */
  now?: () => number
}

export type Tokens = ReturnType<typeof makeTokens>

const EXTERNAL_ALGORITHMS = ['RS256', 'EdDSA']

export function makeTokens(options: TokenOptions) {
  const secret = options.secret ? new TextEncoder().encode(options.secret) : undefined
  const jwks = options.jwksUrl ? createRemoteJWKSet(new URL(options.jwksUrl)) : undefined
  const now = options.now ?? Date.now

  async function sign(userId: string, role: Role): Promise<string> {
    if (!secret) throw new Error('JWT_SECRET is not set: this instance cannot issue tokens')
    return new SignJWT({ role })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(userId)
      .setIssuedAt()
      .setExpirationTime(`${options.ttlSeconds}s`)
      .sign(secret)
  }

  async function verify(token: string): Promise<Principal> {
    let payload: JWTPayload
    try {
      const { alg } = decodeProtectedHeader(token)
      if (alg === 'HS256' && secret) {
        payload = (
          await jwtVerify(token, secret, {
            algorithms: ['HS256'],
            requiredClaims: ['exp', 'sub'],
            currentDate: new Date(now()),
          })
        ).payload
      } else if (alg && EXTERNAL_ALGORITHMS.includes(alg) && jwks) {
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
      if (error instanceof Unauthorized) throw error
      throw new Unauthorized('Invalid or expired token')
    }
    const role = payload.role ?? 'user'
    if (role !== 'user' && role !== 'admin') throw new Unauthorized('Invalid token role')
    return { userId: payload.sub!, role, expiresAt: payload.exp! * 1000 }
  }

  return { sign, verify }
}
