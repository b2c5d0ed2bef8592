import { Elysia } from 'elysia'
import { clientIp } from '../http/client-ip'
import type { Guards } from '../http/guards'
import { errors } from '../http/schemas'
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
      async ({ body, set }) => {
        set.status = 201
        return users.register(body.email, body.password)
      },
      {
        body: Credentials,
        detail: { summary: 'Create an account; ADMIN_EMAILS get role admin' },
        response: { 201: Session, ...errors(400, 409, 413, 415, 422) },
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
