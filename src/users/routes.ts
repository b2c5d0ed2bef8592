import { Elysia } from 'elysia'
import { clientIp } from '../http/client-ip'
import type { Guards } from '../http/guards'
import { errors } from '../http/schemas'
import { idempotencyKeyOf } from '../idempotency/idempotency'
import { IdempotencyKeyHeader } from '../idempotency/header'
import { Credentials, Me, Session } from './model'
import type { Users } from './service'

export type UserRoutesDeps = {
  users: Users
  guards: Guards
  trustProxy: boolean
  balanceOf: (userId: string) => Promise<number>
}

export function userRoutes(deps: UserRoutesDeps) {
  const { users, guards } = deps
  return new Elysia({ detail: { tags: ['auth'] } })
    .use(guards)
    .post(
      '/v1/auth/register',
      async ({ body, request, set }) => {
        const { replayed, ...session } = await users.register(
          body.email,
          body.password,
          idempotencyKeyOf(request),
        )
        set.status = 201
        if (replayed) set.headers['idempotent-replayed'] = 'true'
        return session
      },
      {
        body: Credentials,
        headers: IdempotencyKeyHeader,
        detail: {
          summary: 'Create an account; ADMIN_EMAILS get role admin (Idempotency-Key supported)',
          description:
            'With Idempotency-Key, the key belongs to the account the request creates: for 24 h a retry with the same email, password and key answers 201 again with the same user and a new token (tokens are never stored), header `Idempotent-Replayed: true`; the same email and key with another password is 409 idempotency_conflict (and counts as a login attempt, 429 past the login limit); without the key, or with another, an email already registered is 409 conflict.',
        },
        response: { 201: Session, ...errors(400, 409, 413, 415, 422, 429) },
      },
    )
    .post(
      '/v1/auth/login',
      ({ body, request, server }) =>
        users.login(body.email, body.password, clientIp(request, server, deps.trustProxy)),
      {
        body: Credentials,
        detail: {
          summary: 'Exchange email and password for a token (rate-limited per IP and email)',
          description:
            'Also grants the signup credits to an account that lacks them (a registration that ended between creating the account and granting them): once, idempotently.',
        },
        response: { 200: Session, ...errors(400, 401, 413, 415, 422, 429) },
      },
    )
    .get(
      '/v1/me',
      async ({ principal }) => {
        const [user, balance] = await Promise.all([
          users.get(principal.userId),
          deps.balanceOf(principal.userId),
        ])
        return { ...user, balance }
      },
      { auth: true, detail: { summary: 'The caller' }, response: { 200: Me, ...errors(401) } },
    )
}
