import { Elysia } from 'elysia'
import { Forbidden, Unauthorized } from '../errors'
import type { Authenticator, Principal } from '../users/principals'
import { contextOf } from './request-context'

/**
 * Authentication and authorization as route options, never as code in a
 * handler: `{ auth: true }` resolves `principal` or answers 401; `{ admin: true }`
 * also answers 403 for non-admins. app.ts puts `admin` on the whole /v1/admin group.
 * The principal is the user record the token names (401 when there is none),
 * with the record's role (principals.ts).
 */
export type Guards = ReturnType<typeof makeGuards>

export function bearerToken(header: string | undefined): string {
  const match = header?.match(/^Bearer\s+([A-Za-z0-9._~+/-]+=*)$/i)
  if (!match) throw new Unauthorized('Send Authorization: Bearer <token>')
  return match[1]!
}

export function makeGuards(tokens: Pick<Authenticator, 'verify'>) {
  // one verification per request, shared by the transform and resolve hooks below
  const verified = new WeakMap<Request, Promise<Principal>>()
  function authenticate(request: Request): Promise<Principal> {
    let principal = verified.get(request)
    if (!principal) {
      principal = tokens
        .verify(bearerToken(request.headers.get('authorization') ?? undefined))
        .then((p) => {
          contextOf(request).userId = p.userId
          return p
        })
      verified.set(request, principal)
    }
    return principal
  }
  async function authorize(request: Request) {
    const principal = await authenticate(request)
    if (principal.role !== 'admin') throw new Forbidden('Administrators only')
    return principal
  }

  // checked in transform, which runs before params, query and body are validated: a caller
  // without a valid token (or not an admin) learns 401/403, never a route's parameter rules.
  // `authenticate` and `authorize` are also the body parser's (app.ts): a route that takes a
  // token checks it (and an admin route the role) before a byte of its body is read
  const plugin = new Elysia({ name: 'guards' }).macro({
    auth: {
      detail: { security: [{ bearer: [] }] },
      transform: async ({ request }) => void (await authenticate(request)),
      resolve: async ({ request }) => ({ principal: await authenticate(request) }),
    },
    admin: {
      detail: { security: [{ bearer: [] }] },
      transform: async ({ request }) => void (await authorize(request)),
      resolve: async ({ request }) => ({ principal: await authorize(request) }),
    },
  })
  return Object.assign(plugin, { authenticate, authorize })
}
