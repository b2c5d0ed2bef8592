import { createHmac, timingSafeEqual } from 'node:crypto'
import { Unauthorized } from '../errors'

/**
 * `Atelier-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.
 * Several v1 values may be present (secret rotation); one must match.
 */
export const TOLERANCE_SECONDS = 5 * 60

export function signPayload(rawBody: string, secret: string, t: number) {
  const v1 = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest('hex')
  return `t=${t},v1=${v1}`
}

export function verifySignature(
  header: string | null,
  rawBody: string,
  secret: string,
  nowSeconds: number,
) {
  if (!header) throw new Unauthorized('Missing Atelier-Signature')
  const parts = header.split(',').map((p) => p.trim().split('=', 2) as [string, string?])
  const t = Number(parts.find(([k]) => k === 't')?.[1])
  const signatures = parts
    .filter(([k, v]) => k === 'v1' && v && /^[0-9a-f]{64}$/i.test(v))
    .map(([, v]) => v!)
  if (!Number.isInteger(t) || signatures.length === 0)
    throw new Unauthorized('Malformed Atelier-Signature')
  if (Math.abs(nowSeconds - t) > TOLERANCE_SECONDS)
    throw new Unauthorized(
      `Signature timestamp is more than ${TOLERANCE_SECONDS / 60} minutes from now`,
    )
  const expected = createHmac('sha256', secret).update(`${t}.${rawBody}`).digest()
  const ok = signatures.some((s) => {
    const given = Buffer.from(s, 'hex')
    return given.length === expected.length && timingSafeEqual(given, expected)
  })
  if (!ok) throw new Unauthorized('Signature does not match')
}
